"""Layer diffs: apply a layer tar into an overlay upper dir, compute a layer tar from one."""

from dockyard.diff.apply import ApplyResult, apply_layer
from dockyard.diff.archive import tar_directory, write_layer

__all__ = ["ApplyResult", "apply_layer", "tar_directory", "write_layer"]
