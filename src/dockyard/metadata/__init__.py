"""The metadata store: one SQLite database (WAL) for images, tags, containers, leases."""

from dockyard.metadata.db import Database

__all__ = ["Database"]
