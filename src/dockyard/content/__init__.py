"""Content-addressed blob store: info / read / resumable writer / commit / abort / walk / delete."""

from dockyard.content.store import BlobInfo, ContentStore
from dockyard.content.writer import Writer

__all__ = ["BlobInfo", "ContentStore", "Writer"]
