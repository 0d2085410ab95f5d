"""Content store conformance: every ContentStore implementation must pass these."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.content import ContentStore
from dockyard.errors import InvalidArgument, NotFound, Unavailable
from dockyard.oci.digest import Digest

STORES: dict[str, Callable[[Path], ContentStore]] = {"local": ContentStore}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContentStore]:
    yield STORES[request.param](tmp_path / "content")


def _d(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def test_put_and_read_back(store: ContentStore) -> None:
    data = b"hello content"
    dg = store.put_bytes(data)
    assert dg == _d(data)
    assert store.exists(dg)
    assert store.info(dg).size == len(data)
    assert store.read_bytes(dg) == data
    with store.open(dg) as f:
        assert f.read() == data
    assert store.path(dg).read_bytes() == data


def test_missing_blob_is_not_found(store: ContentStore) -> None:
    dg = _d(b"never stored")
    assert not store.exists(dg)
    for call in (store.info, store.open, store.read_bytes, store.path, store.delete):
        with pytest.raises(NotFound):
            call(dg)


def test_writer_commit_with_expected_digest_and_size(store: ContentStore) -> None:
    data = b"x" * 3_000_000
    with store.writer("ref-a", expected=_d(data), size=len(data)) as w:
        w.write(data[:1000])
        w.write(data[1000:])
        assert w.offset == len(data)
        assert w.digest() == _d(data)
        assert w.commit() == _d(data)
    assert store.read_bytes(_d(data)) == data


def test_digest_mismatch_rejected_and_nothing_visible(store: ContentStore) -> None:
    wrong = _d(b"something else")
    w = store.writer("ref-bad", expected=wrong)
    w.write(b"actual bytes")
    with pytest.raises(InvalidArgument, match="does not match"):
        w.commit()
    assert not store.exists(wrong)
    assert not store.exists(_d(b"actual bytes"))
    assert list(store.walk()) == []
    assert list(store.ingests()) == []


def test_size_mismatch_rejected(store: ContentStore) -> None:
    w = store.writer("ref-size")
    w.write(b"12345")
    with pytest.raises(InvalidArgument, match="size"):
        w.commit(size=4)
    assert list(store.walk()) == []


def test_put_bytes_with_wrong_expected_digest(store: ContentStore) -> None:
    with pytest.raises(InvalidArgument):
        store.put_bytes(b"abc", expected=_d(b"abd"))
    assert list(store.walk()) == []


def test_resume_by_ref(store: ContentStore) -> None:
    data = b"0123456789" * 1000
    w = store.writer("resumable", expected=_d(data))
    w.write(data[:4000])
    w.close()  # e.g. the connection dropped: bytes stay in ingest
    assert ("resumable", 4000) in list(store.ingests())
    w2 = store.writer("resumable", expected=_d(data))
    assert w2.offset == 4000
    w2.write(data[4000:])
    assert w2.commit() == _d(data)
    assert store.read_bytes(_d(data)) == data
    assert list(store.ingests()) == []


def test_concurrent_writer_same_ref_refused(store: ContentStore) -> None:
    w = store.writer("busy-ref")
    try:
        with pytest.raises(Unavailable, match="locked"):
            store.writer("busy-ref")
    finally:
        w.abort()
    store.writer("busy-ref").abort()  # free again once the first writer is gone


def test_concurrent_commits_of_same_digest(store: ContentStore) -> None:
    data = b"same bytes from many writers" * 10_000
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def put(i: int) -> None:
        try:
            w = store.writer(f"concurrent-{i}", expected=_d(data))
            w.write(data)
            barrier.wait()
            assert w.commit() == _d(data)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.read_bytes(_d(data)) == data
    assert [b.digest for b in store.walk()] == [_d(data)]
    assert list(store.ingests()) == []


def test_commit_of_existing_blob_is_success(store: ContentStore) -> None:
    dg = store.put_bytes(b"dup")
    assert store.put_bytes(b"dup") == dg
    with store.writer("dup-ref") as w:
        w.write(b"dup")
        assert w.commit() == dg


def test_context_manager_aborts_uncommitted(store: ContentStore) -> None:
    with pytest.raises(RuntimeError), store.writer("aborted") as w:
        w.write(b"partial")
        raise RuntimeError("boom")
    assert list(store.ingests()) == []
    assert list(store.walk()) == []


def test_put_file_streams(store: ContentStore) -> None:
    data = bytes(range(256)) * 20_000
    info = store.put_file(io.BytesIO(data))
    assert info.digest == _d(data)
    assert info.size == len(data)
    assert store.put_file(io.BytesIO(data), expected=_d(data)) == info


def test_delete_and_walk(store: ContentStore) -> None:
    digests = sorted(store.put_bytes(f"blob {i}".encode()) for i in range(5))
    assert sorted(b.digest for b in store.walk()) == digests
    store.delete(digests[0])
    assert not store.exists(digests[0])
    assert sorted(b.digest for b in store.walk()) == digests[1:]
    with pytest.raises(NotFound):
        store.delete(digests[0])


def test_invalid_digest_refused(store: ContentStore) -> None:
    with pytest.raises(InvalidArgument):
        store.info(Digest("sha256", "../../etc/passwd"))
