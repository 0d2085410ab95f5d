"""The image half of the Engine facade: list, inspect, tag, remove, history, load, save, import,
build, pull, push, search, login and the prunes that free image and build-cache space. A mixin
of ``Engine`` (engine.py), which owns the stores these methods use."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine.types import DeleteResponseItem, HistoryEntry, ImageDetail, ImageSummary, PruneReport
from dockyard.oci import reference

if TYPE_CHECKING:
    from dockyard.build.options import BuildOptions, Progress
    from dockyard.engine.containers import ContainerStore
    from dockyard.engine.events import EventBus
    from dockyard.metadata import Database


class ImageFacade:
    images: Any
    snapshots: Any
    content: Any
    store: ContainerStore
    bus: EventBus
    db: Database

    def _image_users(self, image_id: str) -> list[str]:
        return self.store.image_users(image_id)

    async def list_images(self, all: bool = False, filters: dict[str, list[str]] | None = None
                          ) -> list[ImageSummary]:
        return list(self.images.list(all=all, filters=filters or {}))

    async def inspect_image(self, name: str) -> ImageDetail:
        detail: ImageDetail = self.images.get(name)
        chain = self.images.record(detail.summary.id).chain_id
        if chain and self.snapshots.exists(chain):
            dirs: list[Path] = []
            key: str | None = chain
            while key:
                dirs.append(self.snapshots.upper_dir(key))
                key = self.snapshots.stat(key).parent
            top = dirs[0].parent  # snapshots/<n>/ holds fs/ and work/
            detail.graph_driver_data = {"MergedDir": str(top / "merged"), "UpperDir": str(dirs[0]),
                                        "WorkDir": str(top / "work")}
            if len(dirs) > 1:
                detail.graph_driver_data["LowerDir"] = ":".join(str(d) for d in dirs[1:])
        return detail

    async def tag_image(self, source: str, repo: str, tag: str = "") -> None:
        image_id = self.images.resolve(source)
        target = f"{repo}:{tag}" if tag else repo
        self.images.tag(source, target)
        # Docker names the tag as the user would type it: "foo:1", not "docker.io/library/foo:1".
        self.bus.publish("image", "tag", image_id, {"name": reference.parse(target).familiar()})

    async def remove_image(self, name: str, force: bool = False, noprune: bool = False
                           ) -> list[DeleteResponseItem]:
        image_id = self.images.resolve(name)
        items: list[DeleteResponseItem] = self.images.remove(
            name, force=force, noprune=noprune, users=self._image_users)
        for item in items:
            if item.untagged:
                # As dockerd: the untag event's actor (and name) is the image ID.
                self.bus.publish("image", "untag", image_id, {"name": image_id})
            if item.deleted:
                self.bus.publish("image", "delete", item.deleted, {"name": item.deleted})
        return items

    async def image_history(self, name: str) -> list[HistoryEntry]:
        return list(self.images.history(name))

    def _checkpoint(self) -> None:
        self.db.checkpoint()
        self.snapshots.checkpoint()

    async def prune_images(self, filters: dict[str, list[str]]) -> PruneReport:
        dangling = filters.get("dangling", ["true"])
        all_images = any(v.lower() in ("false", "0") for v in dangling)
        rest = {k: v for k, v in filters.items() if k != "dangling"}
        report: PruneReport = self.images.prune(all=all_images, filters=rest, users=self._image_users)
        for image_id in report.deleted:
            self.bus.publish("image", "delete", image_id, {"name": image_id})
        # a prune also drops half-pulled blobs nobody is writing (a later pull starts over)
        report.space_reclaimed += await asyncio.to_thread(self.content.prune_ingests)
        self.bus.publish("image", "prune", "", {"reclaimed": str(report.space_reclaimed)})
        await asyncio.to_thread(self._checkpoint)
        return report

    async def load_images(self, path: Path) -> list[str]:
        loop = asyncio.get_running_loop()

        def load() -> list[str]:
            with open(path, "rb") as f:
                return list(self.images.load(f))

        messages = await loop.run_in_executor(None, load)
        for msg in messages:
            ref = msg.split(": ", 1)[-1]
            self.bus.publish("image", "load", ref, {"name": ref})
        return messages

    async def save_images(self, names: list[str], out_path: Path) -> None:
        loop = asyncio.get_running_loop()

        def save() -> None:
            with open(out_path, "wb") as f:
                self.images.save(names, f)

        await loop.run_in_executor(None, save)
        for name in names:
            self.bus.publish("image", "save", name, {"name": name})

    async def build_image(self, body: Path, opts: BuildOptions, progress: Progress, indexed: Any = None) -> str:
        from dockyard.engine.builds import build_image
        return await build_image(self, body, opts, progress, indexed)

    async def pull_image(self, ref: str, platform: str, creds: Any, emit: Any, all_tags: bool = False) -> str:
        from dockyard.engine.distribution import pull
        return await pull(self, ref, platform, creds, emit, all_tags)

    async def push_image(self, ref: str, creds: Any, emit: Any, all_tags: bool = False) -> str:
        from dockyard.engine.distribution import push
        return await push(self, ref, creds, emit, all_tags)

    async def search_images(self, term: str, limit: int, creds: Any) -> list[dict[str, Any]]:
        from dockyard.engine.distribution import search
        return await search(self, term, limit, creds)

    async def inspect_remote(self, ref: str, creds: Any) -> dict[str, Any]:
        from dockyard.engine.distribution import inspect_remote
        return await inspect_remote(self, ref, creds)

    async def login(self, server: str, creds: Any) -> None:
        from dockyard.engine.distribution import hub_host, insecure
        from dockyard.remotes.client import Registry
        host = hub_host(self, server.removeprefix("https://").removeprefix("http://").rstrip("/") or "docker.io")
        async with Registry(host, insecure(self, host), creds=creds) as reg:
            resp = await reg.request("GET", "/v2/", "")
            resp.release()

    async def prune_build_cache(self, all: bool, filters: dict[str, list[str]]) -> PruneReport:
        from dockyard.engine.builds import prune_cache
        report = await asyncio.to_thread(prune_cache, self, filters)
        await asyncio.to_thread(self._checkpoint)
        return report

    async def import_image(self, path: Path, repo: str = "", tag: str = "",
                           changes: list[str] | None = None, message: str = "") -> str:
        ref = (f"{repo}:{tag}" if tag else repo) or None
        loop = asyncio.get_running_loop()

        def do_import() -> str:
            with open(path, "rb") as f:
                return str(self.images.import_rootfs(f, ref, changes or [], message))

        image_id = await loop.run_in_executor(None, do_import)
        self.bus.publish("image", "import", image_id, {"name": ref or image_id})
        return image_id
