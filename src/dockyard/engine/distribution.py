"""Pull and push: images between the local store and an OCI registry, with Docker's progress lines.

Pull resolves the reference (an index picks the host's platform), fetches the config, then the
layers concurrently — each skipped when its digest is already in the content store, resumed from
what an interrupted pull left in the ingest, and verified before it is committed — and registers
the image (which unpacks what is missing). Push sends each blob the registry lacks (``HEAD``
first) and then the manifest as stored, so the digest on both sides is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockyard.errors import DockyardError, InvalidArgument, NoSpace, NotFound, Unavailable
from dockyard.images.util import host_arch, load_json
from dockyard.oci import mediatypes as mt
from dockyard.oci import reference
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.remotes.client import Credentials, Registry, registry_host

Emit = Callable[[dict[str, Any]], None]
_PARALLEL = 3


@dataclass
class Target:
    ref: reference.Reference
    host: str
    repo: str

    @classmethod
    def parse(cls, engine: Any, text: str) -> Target:
        ref = reference.parse(text)
        return cls(ref, hub_host(engine, ref.domain), ref.path)


def hub_host(engine: Any, domain: str) -> str:
    """The host serving ``domain``; docker.io names go to ``--default-registry`` when it is set."""
    if domain in ("docker.io", "index.docker.io", "registry-1.docker.io") and engine.config.default_registry:
        return str(engine.config.default_registry)
    return registry_host(domain)


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _bar(current: int, total: int) -> str:
    done = int(50 * current / total) if total else 50
    return f"[{'=' * max(done - 1, 0)}{'>' if done < 50 else '='}{' ' * (50 - done)}] {current}B/{total}B"


def _pick_platform(index: dict[str, Any], platform: str) -> Descriptor:
    want_os, _, want_arch = (platform or f"linux/{host_arch()}").partition("/")
    want_arch = want_arch.split("/")[0] or host_arch()
    for entry in index.get("manifests") or []:
        plat = entry.get("platform") or {}
        if plat.get("os") == want_os and plat.get("architecture") == want_arch:
            return Descriptor.from_json(entry)
    raise NotFound(f"no matching manifest for {want_os}/{want_arch} in the manifest list entries")


def insecure(engine: Any, host: str) -> bool:
    """``--insecure-registry``: a listed host[:port], or an address inside a listed CIDR."""
    import ipaddress
    for entry in engine.config.insecure_registries:
        if entry == host or entry == host.rsplit(":", 1)[0]:
            return True
        try:
            net = ipaddress.ip_network(entry, strict=False)
            if ipaddress.ip_address(host.rsplit(":", 1)[0].strip("[]")) in net:
                return True
        except ValueError:
            continue
    return False


async def pull(engine: Any, text: str, platform: str, creds: Credentials | None, emit: Emit,
               all_tags: bool = False) -> str:
    """Pull ``text``; with ``all_tags`` (a bare repository name, as ``docker pull -a`` sends it)
    every tag the registry lists, one after the other, under one closing status line, as dockerd."""
    t = Target.parse(engine, text)
    if not all_tags:
        image_id, changed = await _pull_tag(engine, t, platform, creds, emit)
        shown = reference.parse(text).familiar()
    else:
        async with Registry(t.host, insecure(engine, t.host), creds) as reg:
            tags = await reg.tags(t.repo)
        changed, image_id = False, ""
        for tag in tags:
            ref = t.ref.with_tag(tag)
            image_id, new = await _pull_tag(engine, Target(ref, t.host, t.repo), platform, creds, emit)
            changed = changed or new
        shown = t.ref.familiar_name
    emit({"status": f"Status: Downloaded newer image for {shown}" if changed
          else f"Status: Image is up to date for {shown}"})
    return image_id


async def _pull_tag(engine: Any, t: Target, platform: str, creds: Credentials | None, emit: Emit
                    ) -> tuple[str, bool]:
    """One tag or digest: (image id, whether the reference now points somewhere new)."""
    if t.ref.domain == "docker.io":
        for mirror in engine.config.registry_mirrors:  # a mirror that fails is skipped, as dockerd does
            host = mirror.split("://", 1)[-1]
            try:
                return await _pull_from(engine, Target(t.ref, host, t.repo), platform, None, emit,
                                        mirror.startswith("http://") or insecure(engine, host))
            except DockyardError:
                continue
    return await _pull_from(engine, t, platform, creds, emit, insecure(engine, t.host))


async def _pull_from(engine: Any, t: Target, platform: str, creds: Credentials | None, emit: Emit,
                     plain_http: bool) -> tuple[str, bool]:
    fetched: list[Digest] = []   # blobs this pull stored; emptied once the image is registered
    try:
        return await _pull_into(engine, t, platform, creds, emit, plain_http, fetched)
    except NoSpace:
        # a full disk: what this pull stored is space the user needs back (a retry fetches it
        # again); other failures keep it, so that the next pull need not download it twice
        for digest in fetched:
            with contextlib.suppress(DockyardError, OSError):
                engine.content.delete(digest)
        raise


async def _pull_into(engine: Any, t: Target, platform: str, creds: Credentials | None, emit: Emit,
                     plain_http: bool, fetched: list[Digest]) -> tuple[str, bool]:
    tag_or_digest = str(t.ref.digest) if t.ref.digest else (t.ref.tag or "latest")
    async with Registry(t.host, plain_http, creds) as reg:
        # resolved before the first progress line, so "not found" is a plain 404, as with dockerd
        data, media, digest = await reg.manifest(t.repo, tag_or_digest)
        emit({"status": f"Pulling from {t.repo}", "id": t.ref.tag or tag_or_digest})
        digest = digest or str(Digest.from_bytes(data))
        if t.ref.digest and str(Digest.from_bytes(data)) != str(t.ref.digest):
            raise InvalidArgument(f"manifest digest mismatch: asked for {t.ref.digest}, got "
                                  f"{Digest.from_bytes(data)}")
        top_digest = digest
        if media in mt.INDEXES or load_json(data, "manifest").get("manifests") is not None:
            child = _pick_platform(load_json(data, "manifest list"), platform)
            data, media, _ = await reg.manifest(t.repo, str(child.digest))
            if str(Digest.from_bytes(data)) != str(child.digest):
                raise InvalidArgument(f"manifest {child.digest} does not match its digest")
        manifest = load_json(data, "manifest")
        config_desc = Descriptor.from_json(manifest.get("config") or {})
        layers = [Descriptor.from_json(x) for x in manifest.get("layers") or []]
        await _fetch(engine, reg, t.repo, config_desc, None, fetched)
        config = engine.content.read_bytes(config_desc.digest)
        sem = asyncio.Semaphore(_PARALLEL)

        present: set[str] = set()  # layers already here say "Already exists" and nothing more

        async def one(desc: Descriptor) -> None:
            lid = _short(str(desc.digest))
            if engine.content.exists(desc.digest):
                present.add(str(desc.digest))
                emit({"status": "Already exists", "progressDetail": {}, "id": lid})
                return
            emit({"status": "Pulling fs layer", "progressDetail": {}, "id": lid})
            async with sem:
                await _fetch(engine, reg, t.repo, desc, lambda n: emit({
                    "status": "Downloading", "progressDetail": {"current": n, "total": desc.size},
                    "progress": _bar(n, desc.size), "id": lid}), fetched)
            emit({"status": "Download complete", "progressDetail": {}, "id": lid})

        downloads = [asyncio.ensure_future(one(d)) for d in layers]
        diff_ids = [str(x) for x in (load_json(config, "image config").get("rootfs") or {}).get("diff_ids") or []]
        try:
            # unpack in order while later layers still download; add_image then finds them committed
            for i, desc in enumerate(layers):
                await downloads[i]
                if len(diff_ids) == len(layers):
                    await asyncio.to_thread(engine.images.unpacker.unpack, diff_ids[:i + 1], layers[:i + 1])
                if str(desc.digest) not in present:
                    emit({"status": "Pull complete", "progressDetail": {}, "id": _short(str(desc.digest))})
        finally:
            for task in downloads:
                task.cancel()
            await asyncio.gather(*downloads, return_exceptions=True)
    name = str(t.ref.tagged_or_default()) if not t.ref.digest else ""
    refs = [name] if name else []
    refs.append(f"{t.ref.name}@{top_digest}")
    before = _current(engine, name)
    image_id: str = await asyncio.to_thread(engine.images.add_image, config, layers, data, refs)
    fetched.clear()
    emit({"status": f"Digest: {top_digest}"})
    engine.bus.publish("image", "pull", image_id, {"name": t.ref.familiar()})
    return image_id, before != image_id


def _current(engine: Any, name: str) -> str | None:
    if not name:
        return None
    try:
        return str(engine.images.resolve(name))
    except DockyardError:
        return None


async def _fetch(engine: Any, reg: Registry, repo: str, desc: Descriptor, progress: Callable[[int], None] | None,
                 fetched: list[Digest]) -> None:
    """Download one blob into the content store. An interrupted download keeps its bytes in the
    ingest and the next pull continues with ``Range``; the commit verifies digest and size, and a
    resumed ingest that turns out wrong (or a registry that cannot resume) starts over once."""
    for attempt in (0, 1):
        if engine.content.exists(desc.digest):
            return
        w = engine.content.writer(f"pull-{desc.digest}", expected=desc.digest, size=desc.size)
        resumed = w.offset > 0
        try:
            shown = 0
            async for chunk in reg.blob(repo, str(desc.digest), w.offset):
                w.write(chunk)
                if progress is not None and w.offset - shown >= (1 << 20):
                    shown = w.offset
                    progress(w.offset)
        except Unavailable as exc:
            if resumed and attempt == 0 and "cannot resume" in str(exc):
                w.abort()
                continue
            w.close()  # keep what arrived for the next pull
            raise
        except NoSpace:
            w.abort()  # on a full disk the partial blob is what the user needs back
            raise
        except BaseException:
            w.close()
            raise
        try:
            w.commit(expected=desc.digest, size=desc.size)  # a mismatch drops the ingest
            fetched.append(desc.digest)
            return
        except InvalidArgument:
            if not resumed or attempt == 1:
                raise
        except NoSpace:
            w.abort()
            raise


async def push(engine: Any, text: str, creds: Credentials | None, emit: Emit, all_tags: bool = False) -> str:
    """Push ``text``; with ``all_tags`` (a bare repository name, as ``docker push -a`` sends it)
    every local tag of that repository, in name order, as dockerd."""
    t = Target.parse(engine, text)
    if all_tags:
        tagged = sorted(((ref, image_id) for image_id, names in engine.images.table.all_tags().items()
                         for ref in map(reference.parse, names) if ref.name == t.ref.name and ref.tag),
                        key=lambda pair: str(pair[0].tag))
        if not tagged:
            raise NotFound(f"An image does not exist locally with the tag: {t.ref.familiar_name}")
        work = [(Target(ref, t.host, t.repo), image_id) for ref, image_id in tagged]
    else:
        work = [(t, engine.images.resolve(str(t.ref.tagged_or_default()) if not t.ref.digest else text))]
    emit({"status": f"The push refers to repository [{t.ref.name}]"})
    digest = ""
    async with Registry(t.host, insecure(engine, t.host), creds) as reg:
        for target, image_id in work:
            digest = await _push_tag(engine, reg, target, image_id, emit)
    return digest


async def _push_tag(engine: Any, reg: Registry, t: Target, image_id: str, emit: Emit) -> str:
    rec = engine.images.record(image_id)
    layers = engine.images.layers(rec)
    manifest_bytes = engine.content.read_bytes(Digest.parse(rec.manifest_digest))
    media = str(json.loads(manifest_bytes).get("mediaType") or mt.OCI_MANIFEST)
    config_desc = Descriptor.from_json(json.loads(manifest_bytes)["config"])
    # other repositories of the same registry this image came from or went to: mount, don't upload
    sources = []
    for name in [*engine.images.table.tags(image_id), *engine.images.table.digests(image_id)]:
        other = reference.parse(name.split("@")[0])
        if hub_host(engine, other.domain) == t.host and other.path != t.repo and other.path not in sources:
            sources.append(other.path)
    for desc in [*reversed(layers), config_desc]:
        lid = _short(str(desc.digest))
        is_layer = desc is not config_desc
        if await reg.has_blob(t.repo, str(desc.digest)):
            if is_layer:
                emit({"status": "Layer already exists", "progressDetail": {}, "id": lid})
            continue
        mounted = None
        for source in sources:
            if await reg.mount_blob(t.repo, str(desc.digest), source):
                mounted = source
                break
        if mounted is not None:
            if is_layer:
                emit({"status": f"Mounted from {mounted}", "progressDetail": {}, "id": lid})
            continue
        if is_layer:
            emit({"status": "Pushing", "progressDetail": {"current": 0, "total": desc.size},
                  "progress": _bar(0, desc.size), "id": lid})
        with engine.content.open(desc.digest) as body:
            await reg.push_blob(t.repo, str(desc.digest), desc.size, body)
        if is_layer:
            emit({"status": "Pushed", "progressDetail": {}, "id": lid})
    tag = t.ref.tag or "latest"
    digest = await reg.push_manifest(t.repo, tag, manifest_bytes, media)
    digest = digest or str(Digest.from_bytes(manifest_bytes))
    emit({"status": f"{tag}: digest: {digest} size: {len(manifest_bytes)}"})
    emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(manifest_bytes)}})
    engine.bus.publish("image", "push", image_id, {"name": t.ref.familiar()})
    return digest


async def inspect_remote(engine: Any, text: str, creds: Credentials | None) -> dict[str, Any]:
    """``GET /distribution/{name}/json``: the registry's descriptor and platforms for a reference."""
    t = Target.parse(engine, text)
    ref = str(t.ref.digest) if t.ref.digest else (t.ref.tag or "latest")
    async with Registry(t.host, insecure(engine, t.host), creds) as reg:
        data, media, digest = await reg.manifest(t.repo, ref)
        doc = load_json(data, "manifest")
        platforms: list[dict[str, Any]] = []
        if media in mt.INDEXES or doc.get("manifests") is not None:
            platforms = [dict(m.get("platform") or {}) for m in doc.get("manifests") or []]
        else:
            config_desc = Descriptor.from_json(doc.get("config") or {})
            chunks = [c async for c in reg.blob(t.repo, str(config_desc.digest))]
            config = load_json(b"".join(chunks), "image config")
            platforms = [{k: config[k] for k in ("architecture", "os", "variant") if config.get(k)}]
    return {"Descriptor": {"mediaType": media, "digest": digest or str(Digest.from_bytes(data)),
                           "size": len(data)}, "Platforms": platforms}


async def search(engine: Any, term: str, limit: int, creds: Credentials | None) -> list[dict[str, Any]]:
    """``GET /images/search``: ask the registry the term names (``host/query``, else the default
    one) with Docker's registry search API; a registry without it answers 404."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        host, query = first, rest
    else:
        host, query = hub_host(engine, "docker.io"), term
    async with Registry(host, insecure(engine, host), creds) as reg:
        resp = await reg.request("GET", f"/v1/search?q={query}&n={limit}", "registry:catalog:*", allow=(404,))
        async with resp:
            if resp.status == 404:
                raise NotFound(f"{host} does not offer search")
            body = await resp.json(content_type=None)
    prefix = f"{host}/" if sep and host == first else ""  # results of a named registry carry its host
    return [{"name": prefix + str(r.get("name", "")),
             "description": r.get("description", ""), "star_count": r.get("star_count", 0),
             "is_official": r.get("is_official", False), "is_automated": r.get("is_automated", False)}
            for r in body.get("results") or []]

