"""ImageService over a real content store, snapshotter and layer applier in tmp_path (no mounts)."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from dockyard.content import ContentStore
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.images import ImageService
from dockyard.images.util import chain_ids, host_arch
from dockyard.metadata.db import Database
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.snapshots import Snapshotter
from tests.unit.test_images_archives import (
    Image,
    docker_archive_blobs,
    docker_archive_old,
    layer,
    oci_layout,
    read_tar,
    sha,
    tar_bytes,
)


@pytest.fixture
def svc(tmp_path: Path):
    db = Database(tmp_path / "metadata.db")
    snaps = Snapshotter(tmp_path / "snapshots")
    service = ImageService(db, ContentStore(tmp_path / "content"), snaps, tmp_path / "tmp")
    yield service
    snaps.close()
    db.close()


def base_layer():
    return layer({"etc/os-release": b"ID=dockyard-test\n", "bin/hello": b"#!/bin/sh\necho hi\n"})


def two_layer_image(tags=("dy-test-a:latest",), gz=False) -> Image:
    return Image([base_layer(), layer({"app/data.txt": b"payload\n"}, gz=gz)], tags=list(tags))


def committed(svc: ImageService) -> set[str]:
    return {i.key for i in svc.snapshots.walk() if i.kind == "committed"}


def state(svc: ImageService) -> tuple[list, list, list]:
    return (svc.db.query("SELECT id FROM images"), svc.db.query("SELECT name FROM tags"),
            [(i.key, i.kind) for i in svc.snapshots.walk()])


# -- load ----------------------------------------------------------------------------------------

def test_load_docker_archive_old_layout(svc: ImageService) -> None:
    img = two_layer_image()
    msgs = svc.load(io.BytesIO(docker_archive_old([img])))
    assert msgs == ["Loaded image: dy-test-a:latest"]
    detail = svc.get("dy-test-a")
    assert detail.summary.id == img.id
    assert detail.summary.repo_tags == ["dy-test-a:latest"]
    assert detail.layer_diff_ids == [x.diff_id for x in img.layers]
    assert chain_ids(detail.layer_diff_ids) == [img.layers[0].diff_id, svc.table.get(img.id).chain_id]
    assert set(chain_ids(detail.layer_diff_ids)) == committed(svc)
    assert detail.summary.size > 0
    # The unpacked top layer holds the file; blobs are stored as received.
    top = chain_ids(detail.layer_diff_ids)[-1]
    assert (svc.snapshots.upper_dir(top) / "app/data.txt").read_bytes() == b"payload\n"
    assert svc.content.read_bytes(Digest.parse(img.id)) == img.config
    manifest = json.loads(svc.content.read_bytes(Digest.parse(detail.manifest_digest)))
    assert [x["digest"] for x in manifest["layers"]] == [sha(x.blob) for x in img.layers]
    assert svc.unpack(img.id) == top  # idempotent


def test_load_docker_archive_blobs_layout_gzip_layer(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-b:v1", "example.com:5000/team/app:2"), gz=True)
    msgs = svc.load(io.BytesIO(docker_archive_blobs([img])))
    assert msgs == ["Loaded image: dy-test-b:v1", "Loaded image: example.com:5000/team/app:2"]
    assert svc.resolve("example.com:5000/team/app:2") == img.id
    manifest = json.loads(svc.content.read_bytes(Digest.parse(svc.get(img.id).manifest_digest)))
    assert manifest["layers"][1]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert manifest["layers"][1]["digest"] == sha(img.layers[1].blob)


def test_load_oci_layout_keeps_manifest_digest(svc: ImageService) -> None:
    img = two_layer_image(("docker.io/library/dy-test-c:latest",), gz=True)
    assert svc.load(io.BytesIO(oci_layout([img]))) == ["Loaded image: dy-test-c:latest"]
    assert svc.get("dy-test-c").manifest_digest == sha(img.manifest)


def test_load_oci_nested_index_picks_host_platform(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-d:multi",))
    assert svc.load(io.BytesIO(oci_layout([img], nested=True))) == ["Loaded image: dy-test-d:multi"]
    assert svc.get("dy-test-d:multi").manifest_digest == sha(img.manifest)


def test_load_untagged_and_ref_name_annotation(svc: ImageService) -> None:
    untagged = Image([base_layer()])
    assert svc.load(io.BytesIO(oci_layout([untagged]))) == [f"Loaded image ID: {untagged.id}"]
    bare = Image([base_layer()], tags=["latest"], labels={"k": "v"})
    # A bare "latest" ref.name names no repository: the image loads untagged.
    assert svc.load(io.BytesIO(oci_layout([bare], ref_name_only=True))) == [f"Loaded image ID: {bare.id}"]
    named = Image([base_layer()], tags=["dy-test-e:1.0"], labels={"k": "w"})
    assert svc.load(io.BytesIO(oci_layout([named], ref_name_only=True))) == ["Loaded image: dy-test-e:1.0"]


def test_retag_on_load_moves_tag(svc: ImageService) -> None:
    first = Image([base_layer()], tags=["dy-test-f:latest"], labels={"n": "1"})
    second = Image([base_layer()], tags=["dy-test-f:latest"], labels={"n": "2"})
    svc.load(io.BytesIO(docker_archive_old([first])))
    msgs = svc.load(io.BytesIO(docker_archive_old([second])))
    assert msgs == [f"The image dy-test-f:latest already exists, renaming the old one with ID {first.id} "
                    "to empty string", "Loaded image: dy-test-f:latest"]
    assert svc.resolve("dy-test-f") == second.id
    assert svc.get(first.id).summary.repo_tags == []
    assert [s.id for s in svc.list(filters={"dangling": ["true"]})] == [first.id]


def test_layer_sharing_unpacks_once(svc: ImageService) -> None:
    a = two_layer_image(("dy-test-g:a",))
    b = Image([base_layer(), layer({"other.txt": b"b\n"})], tags=["dy-test-g:b"])
    svc.load(io.BytesIO(docker_archive_old([a])))
    base_chain = a.layers[0].diff_id
    base_dir = svc.snapshots.upper_dir(base_chain)
    marker = base_dir / "marker-not-in-layer"
    marker.write_text("x")  # a re-extraction would produce a new dir without it
    svc.load(io.BytesIO(oci_layout([b])))
    assert svc.snapshots.upper_dir(base_chain) == base_dir and marker.exists()
    assert len(committed(svc)) == 3
    marker.unlink()
    # Removing one image keeps the shared base for the other.
    svc.remove("dy-test-g:a")
    assert base_chain in committed(svc) and len(committed(svc)) == 2
    svc.remove("dy-test-g:b")
    assert committed(svc) == set()


def test_concurrent_loads_share_base(svc: ImageService) -> None:
    images = [Image([base_layer(), layer({f"f{i}": b"x"})], tags=[f"dy-test-h:{i}"]) for i in range(4)]
    errors: list[BaseException] = []

    def run(img: Image) -> None:
        try:
            svc.load(io.BytesIO(docker_archive_old([img])))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(img,)) for img in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(committed(svc)) == 5
    assert not [i for i in svc.snapshots.walk() if i.kind != "committed"]


# -- rejected archives leave nothing behind ------------------------------------------------------------

def _hostile_member() -> tarfile.TarInfo:
    info = tarfile.TarInfo("../escape.txt")
    info.size = 0
    return info


@pytest.mark.parametrize("case", ["dotdot", "abs", "symlink", "bad-json", "missing-layer", "config-digest",
                                  "layer-digest", "layer-size", "layer-entry", "diff-id"])
def test_bad_archive_rejected_store_unchanged(svc: ImageService, case: str, tmp_path: Path) -> None:
    img = two_layer_image(("dy-test-i:latest",))
    if case == "dotdot":
        data = docker_archive_old([img], extra=[_hostile_member()])
    elif case == "abs":
        info = tarfile.TarInfo("/etc/evil")
        data = docker_archive_old([img], extra=[info])
    elif case == "symlink":
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        data = docker_archive_old([img], extra=[info])
    elif case == "bad-json":
        members = read_tar(docker_archive_old([img]))
        members["manifest.json"] = b"[{not json"
        data = tar_bytes(list(members.items()))
    elif case == "missing-layer":
        members = read_tar(docker_archive_old([img]))
        del members[next(n for n in members if n.endswith("layer.tar"))]
        data = tar_bytes(list(members.items()))
    elif case == "config-digest":
        members = read_tar(oci_layout([img]))
        members["blobs/sha256/" + img.id.split(":")[1]] = img.config.replace(b"amd64", b"arm64")
        data = tar_bytes(list(members.items()))
    elif case in ("layer-digest", "layer-size"):
        members = read_tar(oci_layout([img]))
        name = "blobs/sha256/" + sha(img.layers[1].blob).split(":")[1]
        members[name] = members[name][:-1] + b"\x01" if case == "layer-digest" else members[name] + b"\0"
        data = tar_bytes(list(members.items()))
    elif case == "layer-entry":
        evil = tar_bytes([("../../outside.txt", b"pwned")])
        bad = Image([base_layer(), layer({"x": b"y"})], tags=["dy-test-i:latest"])
        bad.layers[1].tar = evil
        data = docker_archive_old([bad])
    else:  # diff-id: the config lies about the second layer
        lying = Image(img.layers, tags=["dy-test-i:latest"],
                      diff_ids=[img.layers[0].diff_id, sha(b"something else")])
        data = docker_archive_old([lying])
    before = state(svc)
    with pytest.raises(InvalidArgument) as err:
        svc.load(io.BytesIO(data))
    assert state(svc) == before == ([], [], [])
    assert not (tmp_path.parent / "outside.txt").exists() and not (tmp_path / "outside.txt").exists()
    if case == "dotdot":
        assert "../escape.txt" in str(err.value)
    if case == "bad-json":
        assert "manifest.json" in str(err.value)
    if case == "diff-id":
        assert "diff id" in str(err.value)
    if case == "layer-entry":
        assert str(err.value).startswith("layer 1 (") and "../../outside.txt" in str(err.value)
    if case == "missing-layer":
        assert "layer.tar" in str(err.value)
    if case in ("layer-digest", "layer-size"):
        assert "blobs/sha256/" + sha(img.layers[1].blob)[7:] in str(err.value)
    if case == "config-digest":
        assert "blobs/sha256/" + img.id[7:] in str(err.value)


def test_failed_load_keeps_snapshots_of_existing_images(svc: ImageService) -> None:
    good = two_layer_image(("dy-test-j:good",))
    svc.load(io.BytesIO(docker_archive_old([good])))
    before = state(svc)
    lying = Image([base_layer(), layer({"new": b"n"})], tags=["dy-test-j:good"])
    lying.diff_ids = [base_layer().diff_id, sha(b"nope")]
    with pytest.raises(InvalidArgument):
        svc.load(io.BytesIO(docker_archive_old([lying])))
    assert state(svc) == before
    assert svc.resolve("dy-test-j:good") == good.id


# -- save ----------------------------------------------------------------------------------------------

def test_save_layout_and_round_trip(svc: ImageService, tmp_path: Path) -> None:
    img = two_layer_image(("dy-test-k:latest", "dy-test-k:v2"), gz=True)
    svc.load(io.BytesIO(oci_layout([img])))
    out = io.BytesIO()
    svc.save(["dy-test-k:latest"], out)
    members = read_tar(out.getvalue())
    assert {"index.json", "manifest.json", "oci-layout", "repositories"} <= set(members)
    for digest in (img.id, sha(img.manifest), *[sha(x.blob) for x in img.layers]):
        assert members["blobs/sha256/" + digest.split(":")[1]]
    assert members["blobs/sha256/" + sha(img.layers[1].blob).split(":")[1]] == img.layers[1].blob
    index = json.loads(members["index.json"])
    assert index["manifests"] == [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(img.manifest),
        "size": len(img.manifest), "annotations": {
            "io.containerd.image.name": "docker.io/library/dy-test-k:latest",
            "org.opencontainers.image.ref.name": "latest"},
        "platform": {"architecture": "amd64", "os": "linux"}}]
    manifest = json.loads(members["manifest.json"])
    assert manifest == [{"Config": "blobs/sha256/" + img.id.split(":")[1], "RepoTags": ["dy-test-k:latest"],
                         "Layers": ["blobs/sha256/" + sha(x.blob).split(":")[1] for x in img.layers]}]
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads(members["repositories"]) == {"dy-test-k": {"latest": img.layers[1].diff_id[7:]}}
    # A repository without tag saves all its tags.
    out_all = io.BytesIO()
    svc.save(["dy-test-k"], out_all)
    assert json.loads(read_tar(out_all.getvalue())["manifest.json"])[0]["RepoTags"] == [
        "dy-test-k:latest", "dy-test-k:v2"]
    # Load into a fresh store: the same ids and manifest digest.
    other_root = tmp_path / "other"
    db = Database(other_root / "metadata.db")
    snaps = Snapshotter(other_root / "snapshots")
    try:
        other = ImageService(db, ContentStore(other_root / "content"), snaps, other_root / "tmp")
        assert other.load(io.BytesIO(out_all.getvalue())) == [
            "Loaded image: dy-test-k:latest", "Loaded image: dy-test-k:v2"]
        assert other.get("dy-test-k:v2").summary.id == img.id
        assert other.get("dy-test-k:v2").manifest_digest == sha(img.manifest)
    finally:
        snaps.close()
        db.close()


def test_save_of_docker_archive_load_round_trips(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-l:latest",))
    svc.load(io.BytesIO(docker_archive_old([img])))
    detail = svc.get(img.id)
    out = io.BytesIO()
    svc.save([img.id[7:19]], out)
    members = read_tar(out.getvalue())
    assert json.loads(members["manifest.json"])[0]["RepoTags"] is None
    assert "repositories" not in members
    svc.remove("dy-test-l")
    assert svc.list() == []
    assert svc.load(io.BytesIO(out.getvalue())) == [f"Loaded image ID: {img.id}"]
    assert svc.get(img.id).manifest_digest == detail.manifest_digest


# -- import --------------------------------------------------------------------------------------------

def test_import_rootfs_with_changes(svc: ImageService) -> None:
    import gzip
    rootfs = tar_bytes([("bin/", None), ("bin/tool", b"tool\n")])
    changes = ['CMD ["/bin/tool", "--x"]', "ENTRYPOINT /bin/sh -c", "ENV A=1 B=\"two words\"", "ENV C 3 4",
               "EXPOSE 80 53/udp", "LABEL a=b c=d", "USER nobody", "VOLUME /data", "WORKDIR /srv",
               "WORKDIR app", "STOPSIGNAL SIGTERM", "ONBUILD RUN echo hi"]
    image_id = svc.import_rootfs(io.BytesIO(gzip.compress(rootfs)), "dy-test-m:imp", changes, "")
    detail = svc.get("dy-test-m:imp")
    assert detail.summary.id == image_id
    cfg = detail.config
    assert (cfg["os"], cfg["architecture"]) == ("linux", host_arch())
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [sha(rootfs)]}
    assert cfg["history"][0]["comment"] == "Imported from -" and cfg["history"][0]["created_by"] == ""
    c = cfg["config"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/bin/sh -c"] and c["Cmd"] == ["/bin/tool", "--x"]
    assert c["Env"] == ["A=1", "B=two words", "C=3 4"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Labels"] == {"a": "b", "c": "d"}
    assert (c["User"], c["WorkingDir"], c["StopSignal"]) == ("nobody", "/srv/app", "SIGTERM")
    assert c["Volumes"] == {"/data": {}} and c["OnBuild"] == ["RUN echo hi"]
    manifest = json.loads(svc.content.read_bytes(Digest.parse(detail.manifest_digest)))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["layers"] == [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar",
                                   "digest": sha(rootfs), "size": len(rootfs)}]
    assert (svc.snapshots.upper_dir(sha(rootfs)) / "bin/tool").read_bytes() == b"tool\n"
    hist = svc.history(image_id)
    assert len(hist) == 1 and hist[0].id == image_id and hist[0].tags == ["dy-test-m:imp"]
    assert hist[0].size == 5
    other = svc.import_rootfs(io.BytesIO(rootfs), None, ["CMD echo hi"], "my message")
    assert svc.config(other)["config"]["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert svc.config(other)["history"][0]["comment"] == "my message"


@pytest.mark.parametrize("change,needle", [("RUN echo", "RUN"), ("FROM x", "FROM"), ("EXPOSE abc", "abc"),
                                           ("ENV", "ENV"), ("LABEL onlykey", "LABEL")])
def test_import_bad_change_rejected(svc: ImageService, change: str, needle: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        svc.import_rootfs(io.BytesIO(tar_bytes([("f", b"x")])), "dy-test-n:x", [change], "")
    assert needle in str(err.value)
    assert state(svc) == ([], [], [])
    assert list(svc.content.walk()) == []


# -- tags, rmi, conflicts ---------------------------------------------------------------------------------

def test_tag_resolve_and_untag(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-o:latest",))
    svc.load(io.BytesIO(docker_archive_old([img])))
    svc.tag("dy-test-o", "registry.local:5000/dy/o:1")
    assert svc.resolve("registry.local:5000/dy/o:1") == img.id
    assert svc.resolve(img.id) == svc.resolve(img.id[7:15]) == svc.resolve("sha256:" + img.id[7:20]) == img.id
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        svc.resolve("nope")
    with pytest.raises(InvalidArgument):
        svc.tag("dy-test-o", "Bad/Name")
    items = svc.remove("registry.local:5000/dy/o:1")
    assert [(i.untagged, i.deleted) for i in items] == [("registry.local:5000/dy/o:1", "")]
    assert svc.get(img.id).summary.repo_tags == ["dy-test-o:latest"]


def test_rmi_by_id_with_several_tags_conflicts(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-p:latest",))
    svc.load(io.BytesIO(docker_archive_old([img])))
    svc.tag(img.id, "dy-test-p2:latest")
    with pytest.raises(Conflict) as err:
        svc.remove(img.id[7:19])
    assert str(err.value) == (f"conflict: unable to delete {img.id[7:19]} (must be forced) - "
                              "image is referenced in multiple repositories")
    items = svc.remove(img.id, force=True)
    assert [(i.untagged, i.deleted) for i in items] == [
        ("dy-test-p2:latest", ""), ("dy-test-p:latest", ""), ("", img.id)]
    assert state(svc) == ([], [], [])
    assert list(svc.content.walk()) == []


def test_rmi_single_tag_by_id_untags_and_deletes(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-q:latest",))
    svc.load(io.BytesIO(docker_archive_old([img])))
    items = svc.remove(img.id[7:19])
    assert [(i.untagged, i.deleted) for i in items] == [("dy-test-q:latest", ""), ("", img.id)]


def test_rmi_conflicts_with_containers(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-r:latest",))
    svc.load(io.BytesIO(docker_archive_old([img])))
    cid = "c0ffee" + "0" * 58
    stopped = lambda _id: [(cid, False)]  # noqa: E731
    running = lambda _id: [(cid, True)]  # noqa: E731
    with pytest.raises(Conflict) as err:
        svc.remove("dy-test-r", users=stopped)
    assert str(err.value) == (f'conflict: unable to remove repository reference "dy-test-r" (must force) - '
                              f"container {cid[:12]} is using its referenced image {img.id[7:19]}")
    with pytest.raises(Conflict) as err:
        svc.remove(img.id, users=stopped)
    assert str(err.value) == (f"conflict: unable to delete {img.id[7:19]} (must be forced) - "
                              f"image is being used by stopped container {cid[:12]}")
    with pytest.raises(Conflict) as err:
        svc.remove(img.id, force=True, users=running)
    assert str(err.value) == (f"conflict: unable to delete {img.id[7:19]} (cannot be forced) - "
                              f"image is being used by running container {cid[:12]}")
    # Forced untag of the only tag leaves the image for its container.
    items = svc.remove("dy-test-r", force=True, users=running)
    assert [(i.untagged, i.deleted) for i in items] == [("dy-test-r:latest", "")]
    assert svc.get(img.id).summary.repo_tags == []
    # Plain ids from the callback count as stopped containers.
    with pytest.raises(Conflict, match="stopped container"):
        svc.remove(img.id, users=lambda _id: [cid])
    items = svc.remove(img.id, force=True, users=stopped)
    assert [(i.untagged, i.deleted) for i in items] == [("", img.id)]


# -- list, history, prune ---------------------------------------------------------------------------------

def test_list_filters(svc: ImageService) -> None:
    old = Image([base_layer()], tags=["dy-test-s/app:1"], labels={"tier": "web"},
                created="2020-01-01T00:00:00Z")
    mid = Image([base_layer()], tags=["dy-test-s/db:1"], labels={"tier": "db"}, created="2021-01-01T00:00:00Z")
    new = Image([base_layer()], labels={"tier": "web", "x": "1"}, created="2022-01-01T00:00:00Z")
    svc.load(io.BytesIO(docker_archive_old([old, mid, new])))
    assert [s.id for s in svc.list()] == [new.id, mid.id, old.id]
    assert [s.id for s in svc.list(filters={"dangling": ["true"]})] == [new.id]
    assert [s.id for s in svc.list(filters={"dangling": ["false"]})] == [mid.id, old.id]
    assert [s.id for s in svc.list(filters={"label": ["tier=web"]})] == [new.id, old.id]
    assert [s.id for s in svc.list(filters={"label": ["tier=web", "x"]})] == [new.id]
    assert [s.id for s in svc.list(filters={"reference": ["dy-test-s/a*"]})] == [old.id]
    assert [s.id for s in svc.list(filters={"reference": ["dy-test-s/*:1"]})] == [mid.id, old.id]
    assert [s.id for s in svc.list(filters={"before": ["dy-test-s/db:1"]})] == [old.id]
    assert [s.id for s in svc.list(filters={"since": ["dy-test-s/db:1"]})] == [new.id]
    assert svc.list()[0].created == 1640995200
    with pytest.raises(InvalidArgument):
        svc.list(filters={"bogus": ["1"]})
    with pytest.raises(InvalidArgument):
        svc.list(filters={"dangling": ["maybe"]})


def test_history(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-t:latest",))
    svc.load(io.BytesIO(docker_archive_old([img])))
    hist = svc.history("dy-test-t")
    assert [h.created_by for h in hist] == ['CMD ["/bin/sh"]', "ADD layer1", "ADD layer0"]
    assert [h.id for h in hist] == [img.id, "<missing>", "<missing>"]
    assert hist[0].tags == ["dy-test-t:latest"] and hist[0].size == 0
    assert hist[1].size == len(b"payload\n") and hist[2].size > 0


def test_prune(svc: ImageService) -> None:
    dangling = Image([layer({"d": b"d"})], labels={"n": "d"})
    tagged = Image([layer({"t": b"t"})], tags=["dy-test-u:1"], labels={"n": "t"})
    used = Image([layer({"u": b"u"})], labels={"n": "u"})
    svc.load(io.BytesIO(docker_archive_old([dangling, tagged, used])))
    users = lambda i: [("c" * 64, True)] if i == used.id else []  # noqa: E731
    report = svc.prune(users=users)
    assert report.deleted == [dangling.id] and report.space_reclaimed > 0
    report = svc.prune(all=True, users=users)
    assert report.deleted == [tagged.id]
    assert [s.id for s in svc.list()] == [used.id]
    assert svc.db.query("SELECT name FROM tags") == []


def test_add_image_pull_style_with_repo_digest(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-v:latest",), gz=True)
    layers = []
    for lay in img.layers:
        info = svc.content.put_file(io.BytesIO(lay.blob))
        layers.append(Descriptor(lay.media_type, info.digest, info.size))
    manifest_digest = sha(img.manifest)
    image_id = svc.add_image(img.config, layers, img.manifest,
                             ["dy-test-v:latest", f"dy-test-v@{manifest_digest}"])
    assert image_id == img.id
    assert svc.get("dy-test-v").summary.repo_digests == [f"dy-test-v@{manifest_digest}"]
    assert svc.resolve(f"dy-test-v@{manifest_digest}") == img.id
    assert svc.unpack(img.id) == chain_ids([x.diff_id for x in img.layers])[-1]
    # Without a manifest one is made, so save works.
    cfg_only = Image([img.layers[0]], labels={"v": "2"})
    other = svc.add_image(cfg_only.config, layers[:1], None, [])
    manifest = json.loads(svc.content.read_bytes(Digest.parse(svc.get(other).manifest_digest)))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    svc.save([other], io.BytesIO())
    # The last tag takes the repository's digest references with it.
    items = svc.remove("dy-test-v:latest")
    assert [(i.untagged, i.deleted) for i in items] == [
        ("dy-test-v:latest", ""), (f"dy-test-v@{manifest_digest}", ""), ("", img.id)]
    # The base layer stays for the other image; missing blobs are refused.
    assert img.layers[0].diff_id in committed(svc)
    with pytest.raises(NotFound):
        svc.add_image(cfg_only.config, [Descriptor(lay.media_type, Digest.parse(sha(b"nope")), 4)], None, [])


def test_load_gzipped_archive_with_symlinked_layer(svc: ImageService) -> None:
    import gzip
    a = Image([base_layer()], tags=["dy-test-w:a"])
    b = Image([base_layer(), layer({"b": b"b"})], tags=["dy-test-w:b"])
    members = read_tar(docker_archive_old([a]))
    manifest = json.loads(members["manifest.json"])
    a_layer = manifest[0]["Layers"][0]
    members["b-config.json"] = b.config
    members["bbbb/layer.tar"] = b.layers[1].blob
    manifest.append({"Config": "b-config.json", "RepoTags": b.tags, "Layers": ["shared/layer.tar", "bbbb/layer.tar"]})
    members["manifest.json"] = json.dumps(manifest).encode()
    link = tarfile.TarInfo("shared/layer.tar")
    link.type = tarfile.SYMTYPE
    link.linkname = "../" + a_layer
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(link)
    assert svc.load(io.BytesIO(gzip.compress(buf.getvalue()))) == ["Loaded image: dy-test-w:a",
                                                                  "Loaded image: dy-test-w:b"]
    assert svc.resolve("dy-test-w:b") == b.id
    assert len(committed(svc)) == 2


def test_rmi_plain_container_ids_read_state_from_records(svc: ImageService) -> None:
    img = two_layer_image(("dy-test-x:latest",))
    svc.load(io.BytesIO(docker_archive_old([img])))
    cid = "d00d" + "1" * 60
    record = json.dumps({"id": cid, "state": {"status": "running"}})
    with svc.db.transaction() as conn:
        conn.execute("INSERT INTO containers (id, name, image_id, created, record) VALUES (?,?,?,?,?)",
                     (cid, f"dy-test-x-{cid[:6]}", img.id, 0.0, record))
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image is being used by running container"):
        svc.remove(img.id, force=True, users=lambda _id: [cid])
    with svc.db.transaction() as conn:
        conn.execute("UPDATE containers SET record = ? WHERE id = ?",
                     (json.dumps({"id": cid, "state": {"status": "exited"}}), cid))
    with pytest.raises(Conflict, match=r"\(must be forced\) - image is being used by stopped container"):
        svc.remove(img.id, users=lambda _id: [cid])
