"""Rows of the ``images``, ``tags`` and ``repo_digests`` tables, read into small typed records."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from dockyard.images.util import chain_ids, config_diff_ids
from dockyard.metadata.db import Database


@dataclass(frozen=True)
class ImageRecord:
    id: str
    config_bytes: bytes
    manifest_digest: str | None
    chain_id: str | None
    size: int
    parent: str | None
    created_at: float

    @cached_property
    def config(self) -> dict[str, Any]:
        obj = json.loads(self.config_bytes)
        return obj if isinstance(obj, dict) else {}

    @cached_property
    def diff_ids(self) -> list[str]:
        return config_diff_ids(self.config, f"image {self.id} config")

    @cached_property
    def chains(self) -> list[str]:
        return chain_ids(self.diff_ids)

    @staticmethod
    def from_row(row: sqlite3.Row) -> ImageRecord:
        return ImageRecord(row["id"], bytes(row["config"]), row["manifest_digest"], row["chain_id"],
                           int(row["size"]), row["parent"], float(row["created_at"]))


class ImageTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, image_id: str) -> ImageRecord | None:
        row = self.db.query_one("SELECT * FROM images WHERE id = ?", (image_id,))
        return ImageRecord.from_row(row) if row is not None else None

    def all(self) -> list[ImageRecord]:
        return [ImageRecord.from_row(r) for r in self.db.query("SELECT * FROM images ORDER BY created_at")]

    def ids_with_prefix(self, hex_prefix: str) -> list[str]:
        rows = self.db.query("SELECT id FROM images WHERE substr(id, 8, ?) = ?", (len(hex_prefix), hex_prefix))
        return [r["id"] for r in rows]

    def tag_target(self, name: str) -> str | None:
        row = self.db.query_one("SELECT image_id FROM tags WHERE name = ?", (name,))
        return row["image_id"] if row is not None else None

    def digest_target(self, name: str) -> str | None:
        row = self.db.query_one("SELECT image_id FROM repo_digests WHERE name = ?", (name,))
        return row["image_id"] if row is not None else None

    def tags(self, image_id: str) -> list[str]:
        return [r["name"] for r in self.db.query("SELECT name FROM tags WHERE image_id = ? ORDER BY name",
                                                 (image_id,))]

    def digests(self, image_id: str) -> list[str]:
        return [r["name"] for r in self.db.query(
            "SELECT name FROM repo_digests WHERE image_id = ? ORDER BY name", (image_id,))]

    def all_tags(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.db.query("SELECT name, image_id FROM tags ORDER BY name"):
            out.setdefault(r["image_id"], []).append(r["name"])
        return out

    def all_digests(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.db.query("SELECT name, image_id FROM repo_digests ORDER BY name"):
            out.setdefault(r["image_id"], []).append(r["name"])
        return out

    @staticmethod
    def insert(conn: sqlite3.Connection, image_id: str, config: bytes, manifest_digest: str | None,
               chain_id: str | None, size: int) -> None:
        conn.execute(
            "INSERT INTO images (id, config, manifest_digest, chain_id, size, parent, created_at) "
            "VALUES (?, ?, ?, ?, ?, NULL, ?) ON CONFLICT(id) DO UPDATE SET "
            "manifest_digest = COALESCE(excluded.manifest_digest, images.manifest_digest), "
            "chain_id = excluded.chain_id, size = excluded.size",
            (image_id, config, manifest_digest, chain_id, size, time.time()))

    @staticmethod
    def set_tag(conn: sqlite3.Connection, name: str, image_id: str) -> str | None:
        """Point ``name`` at ``image_id``; returns the image it was moved from (if another)."""
        row = conn.execute("SELECT image_id FROM tags WHERE name = ?", (name,)).fetchone()
        conn.execute("INSERT INTO tags (name, image_id) VALUES (?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id", (name, image_id))
        if row is not None and row["image_id"] != image_id:
            return str(row["image_id"])
        return None

    @staticmethod
    def add_digest(conn: sqlite3.Connection, name: str, image_id: str) -> None:
        conn.execute("INSERT OR IGNORE INTO repo_digests (name, image_id) VALUES (?, ?)", (name, image_id))
