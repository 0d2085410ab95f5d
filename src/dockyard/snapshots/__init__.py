"""Snapshotters: layered filesystems for images (committed) and containers (active)."""

from dockyard.snapshots.metadata import SnapshotInfo
from dockyard.snapshots.overlay import Snapshotter

__all__ = ["SnapshotInfo", "Snapshotter"]
