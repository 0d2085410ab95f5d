"""Targeted fuzzing (hypothesis) of what schemathesis does not aim at: malformed JSON bodies,
unknown fields, invalid names, path traversal in path parameters and in the archive endpoints,
huge values, malformed filters and API versions. Every request goes through the harness (no 5xx,
daemon alive, a rejected request changes no state); some tests add their own checks.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import DERANDOMIZE, examples
from tests.fuzz.harness import BASE_IMAGE, IMG, NET, RUN, VOL, Fuzzer, Outcome

pytestmark = pytest.mark.root


def fuzz_settings(n: int) -> settings:
    return settings(max_examples=examples(n), derandomize=DERANDOMIZE, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def _url(route: str, **params: Any) -> str:
    return route + ("?" + urlencode(params) if params else "")


# --------------------------------------------------------------------------- malformed JSON

# (path, a valid body): each endpoint that reads a JSON body, aimed at fixture objects
JSON_ENDPOINTS: list[tuple[str, dict[str, Any]]] = [
    ("/containers/create", {"Image": BASE_IMAGE, "Cmd": ["true"], "HostConfig": {"Memory": 0}}),
    (f"/containers/{RUN}/update", {"Memory": 0, "RestartPolicy": {"Name": ""}}),
    (f"/containers/{RUN}/exec", {"Cmd": ["true"], "AttachStdout": True}),
    ("/networks/create", {"Name": "fz-other", "Driver": "bridge"}),
    (f"/networks/{NET}/connect", {"Container": RUN, "EndpointConfig": {"Aliases": ["a"]}}),
    (f"/networks/{NET}/disconnect", {"Container": RUN, "Force": False}),
    ("/volumes/create", {"Name": "fz-other", "Labels": {"a": "b"}}),
    (f"/commit?container={RUN}&repo=fz-commit", {"Cmd": ["sh"], "Labels": {"a": "b"}}),
    ("/auth", {"username": "u", "password": "p", "serveraddress": "127.0.0.1:1"}),
]
_REGISTRY_PATHS = {"/auth"}


def _truncations(doc: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(1, max(1, len(doc) - 1)).map(lambda n: doc[:n])


def _nested(depth: int, kind: str) -> bytes:
    return (b"[" * depth + b"]" * depth) if kind == "list" else (b'{"a":' * depth + b"1" + b"}" * depth)


def malformed_bodies(valid: dict[str, Any]) -> st.SearchStrategy[bytes]:
    doc = json.dumps(valid).encode()
    return st.one_of(
        _truncations(doc),
        st.sampled_from([b"[]", b'"x"', b"1", b"true", b"[1, 2]", b"{", b"}", b"nul", b"\xff\xfe", b"{'a': 1}",
                         b'{"Image": NaN}', b'{"a": Infinity}', b'{"a": 1e999}', b'{"a": -1e999}',
                         b"\x00", b'{"a":1}{"b":2}', b'{"a": "\\ud800"}']),
        st.builds(lambda d, k: _nested(d, k), st.sampled_from([64, 2000, 100_000]), st.sampled_from(["list", "obj"])),
        st.integers(4000, 20000).map(lambda n: b'{"Memory": ' + b"9" * n + b"}"),
        st.integers(4000, 20000).map(lambda n: json.dumps(valid)[:-1].encode() + b', "X": ' + b"1" * n + b"}"),
        st.binary(max_size=64),
    )


@fuzz_settings(60)
@given(data=st.data())
def test_malformed_json_bodies(fuzzer: Fuzzer, data: st.DataObject) -> None:
    path, valid = data.draw(st.sampled_from(JSON_ENDPOINTS), label="endpoint")
    body = data.draw(malformed_bodies(valid), label="body")
    op = ("POST", path.split("?")[0])
    out = fuzzer.send(op, "POST", path, data=body, headers={"Content-Type": "application/json"})
    if path not in _REGISTRY_PATHS:
        assert out.status < 500


# --------------------------------------------------------------------------- unknown fields and wrong types

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8)


def _mutate(valid: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """The valid body with unknown fields added and some known ones given a value of a wrong type
    (at the top level and inside the nested objects Docker's bodies have)."""
    body = json.loads(json.dumps(valid))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        target = body
        if "HostConfig" in body and data.draw(st.booleans(), label="nested"):
            target = body["HostConfig"]
        known = ["Memory", "Cmd", "Name", "Labels", "HostConfig", "EndpointConfig", "RestartPolicy", "Env",
                 "Binds", "PortBindings", "NetworkMode", "Mounts", "Devices", "Ulimits", "Healthcheck",
                 "ExposedPorts", "Volumes", "NetworkingConfig", "IPAM", "Options", "DriverOpts", "ConsoleSize",
                 "Tty", "Container", "Force", "Driver", "CpuShares", "PidsLimit", "Tmpfs", "LogConfig"]
        key = data.draw(st.sampled_from(known) | st.text(min_size=1, max_size=12), label="key")
        target[key] = data.draw(_JSON_VALUES, label="value")
    return body


@fuzz_settings(60)
@given(data=st.data())
def test_unknown_fields_and_wrong_types(fuzzer: Fuzzer, data: st.DataObject) -> None:
    path, valid = data.draw(st.sampled_from(JSON_ENDPOINTS[:-1]), label="endpoint")
    body = _mutate(valid, data)
    fuzzer.send(("POST", path.split("?")[0]), "POST", path, json=body)


# --------------------------------------------------------------------------- invalid names

BAD_NAMES = st.one_of(
    st.sampled_from(["../x", "..", ".", "/", "a/../../b", "../../../../etc/passwd", "a\x00b", "\x00",
                     "a" * 300, "a" * 5000, "-rf", " ", "a b", "é", "名前", "a\nb", "%2e%2e", "..\\..\\x",
                     "a:b", "a@sha256:" + "0" * 64, "UPPER", "_a", "a..b", "~", "$(id)", "`id`"]),
    st.text(min_size=1, max_size=40),
)


def _name_requests(name: str) -> list[tuple[tuple[str, str], str, str, dict[str, Any]]]:
    """(op, method, url, requests kwargs) for every place a name is given."""
    return [
        (("POST", "/containers/create"), "POST", _url("/containers/create", name=name),
         {"json": {"Image": BASE_IMAGE, "Cmd": ["true"]}}),
        (("POST", "/containers/{id}/rename"), "POST", _url(f"/containers/{RUN}/rename", name=name), {}),
        (("POST", "/networks/create"), "POST", "/networks/create", {"json": {"Name": name}}),
        (("POST", "/volumes/create"), "POST", "/volumes/create", {"json": {"Name": name}}),
        (("POST", "/images/{name}/tag"), "POST", _url(f"/images/{IMG}/tag", repo=name, tag="t"), {}),
        (("POST", "/images/{name}/tag"), "POST", _url(f"/images/{IMG}/tag", repo="fz-x", tag=name), {}),
        (("POST", "/commit"), "POST", _url("/commit", container=RUN, repo=name), {}),
        (("POST", "/commit"), "POST", _url("/commit", container=RUN, repo="fz-x", tag=name), {}),
        (("POST", "/containers/create"), "POST", "/containers/create",
         {"json": {"Image": name}}),
        (("POST", "/containers/create"), "POST", "/containers/create",
         {"json": {"Image": BASE_IMAGE, "Volumes": {name: {}}, "HostConfig": {"Binds": [f"{name}:/data"]}}}),
        (("POST", "/containers/create"), "POST", "/containers/create",
         {"json": {"Image": BASE_IMAGE, "HostConfig": {"NetworkMode": name}}}),
        (("POST", "/containers/create"), "POST", "/containers/create",
         {"json": {"Image": BASE_IMAGE, "WorkingDir": name, "User": name, "Hostname": name}}),
        (("POST", "/build"), "POST", _url("/build", t=name), {"data": _tar({"Dockerfile": b"FROM scratch\n"})}),
    ]


@fuzz_settings(40)
@given(name=BAD_NAMES, which=st.integers(0, 12))
def test_invalid_names(fuzzer: Fuzzer, name: str, which: int) -> None:
    op, method, url, kwargs = _name_requests(name)[which]
    out = fuzzer.send(op, method, url, **kwargs)
    _no_escape(fuzzer, out)


def _no_escape(fuzzer: Fuzzer, out: Outcome) -> None:
    """Whatever was accepted stayed inside the daemon's roots."""
    base = fuzzer.d.data_root.parent
    extra = sorted(p.name for p in base.iterdir()) if base.exists() else []
    assert set(extra) <= {"data", "dockyardd.log", "marker"}, f"a request wrote outside the data root: {extra}"


# --------------------------------------------------------------------------- path traversal in path parameters

TRAVERSALS = st.one_of(
    st.sampled_from(["..", "../..", "../../../etc/passwd", "..%2f..%2fetc", "%2e%2e", "%2e%2e%2f%2e%2e",
                     "....//....//", "..;", "%00", "fz-run%00", "fz-run/../fz-idle", "./fz-run", "fz-run/.",
                     "%252e%252e", "..\\..", "/", "//", "\x7f", "%ff%fe"]),
    st.text(alphabet=st.sampled_from("./%2e\\\x00a"), min_size=1, max_size=16),
)
_PARAM_PATHS = [("GET", "/containers/{}/json"), ("DELETE", "/volumes/{}"), ("GET", "/volumes/{}"),
                ("GET", "/networks/{}"), ("DELETE", "/networks/{}"), ("GET", "/images/{}/json"),
                ("DELETE", "/images/{}"), ("GET", "/exec/{}/json"), ("GET", "/containers/{}/changes"),
                ("POST", "/containers/{}/pause"), ("GET", "/containers/{}/top"),
                ("GET", "/distribution/{}/json")]


@fuzz_settings(40)
@given(value=TRAVERSALS, route=st.sampled_from(_PARAM_PATHS), raw=st.booleans())
def test_path_traversal_in_path_params(fuzzer: Fuzzer, value: str, route: tuple[str, str], raw: bool) -> None:
    method, template = route
    op = (method, template.replace("{}", "{name}" if "/volumes/" in template or "/images/" in template
                                   or "/distribution/" in template else "{id}"))
    if raw:
        # exactly these bytes on the wire: no client normalises the dot segments away
        target = template.format(value.replace(" ", "%20").replace("\x00", "%00").replace("\x7f", "%7F"))
        fuzzer.raw(f"{method} {target}", f"{method} {target} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
                   f"Content-Length: 0\r\n\r\n".encode(), streaming=False)
    else:
        fuzzer.send(op, method, template.format(quote(value, safe="")))


# --------------------------------------------------------------------------- archive endpoints

def _tar(files: dict[str, bytes], links: dict[str, str] | None = None, dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


ARCHIVE_PATHS = st.one_of(
    st.sampled_from(["../../../../..", "/../../../etc", "/proc/self/root/etc", "..", "/", "", "/etc/../..",
                     "/tmp/../../../../../", "\x00", "/etc\x00/x", "a" * 5000, "/" + "a/" * 300, "/dev/zero",
                     "/proc/1/root", "/sys/fs/cgroup", "//", "/nonexistent/..", "~"]),
    st.text(alphabet=st.sampled_from("./a\\\x00%"), max_size=20),
)


@fuzz_settings(40)
@given(path=ARCHIVE_PATHS, marker_path=st.booleans(), method=st.sampled_from(["GET", "HEAD"]))
def test_archive_read_traversal(fuzzer: Fuzzer, path: str, marker_path: bool, method: str) -> None:
    marker = _marker(fuzzer)
    if marker_path:
        path = "../../../../../../../.." + str(marker)
    out = fuzzer.send((method, "/containers/{id}/archive"), method, _url(f"/containers/{RUN}/archive", path=path))
    assert MARKER_TEXT not in out.body, f"archive GET {path!r} returned a host file"


MARKER_TEXT = b"fuzz-marker: a host file no container may read"


def _marker(fuzzer: Fuzzer) -> Any:
    marker = fuzzer.d.data_root.parent / "marker"
    if not marker.exists():
        marker.write_bytes(MARKER_TEXT)
    return marker


_EVIL_MEMBERS = st.sampled_from([
    ({"../../../../../../../../{escape}": b"x"}, {}, ()),
    ({"/{escape}": b"x"}, {}, ()),
    ({"evil/pwned": b"x"}, {"evil": "{escape_dir}"}, ()),
    ({"evil/pwned": b"x"}, {"evil": "../../../../../../../../{escape_dir}"}, ()),
    ({"a/../../../../../{escape}": b"x"}, {}, ("a",)),
    ({"ok.txt": b"fine"}, {}, ()),
    ({"x\x00y": b"x"}, {}, ()),
    ({"d/": b""}, {"d/l": "/"}, ()),
])


@fuzz_settings(30)
@given(path=ARCHIVE_PATHS | st.sampled_from(["/tmp", "/"]), members=_EVIL_MEMBERS,
       flags=st.fixed_dictionaries({"noOverwriteDirNonDir": st.sampled_from(["0", "1", "x"]),
                                    "copyUIDGID": st.sampled_from(["0", "1"])}),
       garbage=st.booleans())
def test_archive_put_traversal(fuzzer: Fuzzer, path: str, members: Any, flags: dict[str, str],
                               garbage: bool) -> None:
    escape_dir = fuzzer.d.data_root.parent
    escape = escape_dir / "escaped"
    files, links, dirs = members
    fmt = {"escape": str(escape).lstrip("/"), "escape_dir": str(escape_dir)}
    body = b"not a tar at all" if garbage else _tar(
        {k.format(**fmt): v for k, v in files.items()}, {k: v.format(**fmt) for k, v in links.items()}, dirs)
    fuzzer.send(("PUT", "/containers/{id}/archive"), "PUT", _url(f"/containers/{RUN}/archive", path=path, **flags),
                data=body, headers={"Content-Type": "application/x-tar"})
    assert not escape.exists(), "PUT archive wrote outside the container"
    assert not (escape_dir / "pwned").exists(), "PUT archive followed a symlink out of the container"


# --------------------------------------------------------------------------- huge values

HUGE_INTS = st.sampled_from([2**63, 2**63 - 1, 2**64, -(2**63), -(2**63) - 1, -1, -2, 2**31, 2**32, 10**30,
                             -(10**30), 0, 1, 4, 2**53 + 1]) | st.integers()
_RESOURCE_KEYS = ["Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota",
                  "PidsLimit", "BlkioWeight"]
_HOST_INT_KEYS = [*_RESOURCE_KEYS, "ShmSize", "OomScoreAdj"]


@fuzz_settings(50)
@given(data=st.data())
def test_huge_values_in_bodies(fuzzer: Fuzzer, data: st.DataObject) -> None:
    which = data.draw(st.sampled_from(["update", "create", "health", "restart", "console", "ulimit", "stop"]))
    value = data.draw(HUGE_INTS, label="value")
    if which == "update":
        key = data.draw(st.sampled_from(_RESOURCE_KEYS), label="key")
        fuzzer.send(("POST", "/containers/{id}/update"), "POST", f"/containers/{RUN}/update", json={key: value})
        return
    host: dict[str, Any] = {}
    config: dict[str, Any] = {"Image": BASE_IMAGE, "Cmd": ["true"]}
    if which == "create":
        host[data.draw(st.sampled_from(_HOST_INT_KEYS), label="key")] = value
    elif which == "health":
        config["Healthcheck"] = {"Test": ["CMD", "true"],
                                 data.draw(st.sampled_from(["Interval", "Timeout", "StartPeriod", "Retries",
                                                            "StartInterval"])): value}
    elif which == "restart":
        host["RestartPolicy"] = {"Name": "on-failure", "MaximumRetryCount": value}
    elif which == "console":
        host["ConsoleSize"] = [value, value]
    elif which == "ulimit":
        host["Ulimits"] = [{"Name": "nofile", "Soft": value, "Hard": value}]
    else:
        config["StopTimeout"] = value
    fuzzer.send(("POST", "/containers/create"), "POST", "/containers/create", json={**config, "HostConfig": host})


_QUERY_INTS = [("POST", "/containers/{id}/resize", f"/containers/{RUN}/resize", "h"),
               ("POST", "/containers/{id}/resize", f"/containers/{RUN}/resize", "w"),
               ("POST", "/exec/{id}/resize", "/exec/{exec}/resize", "h"),
               ("GET", "/containers/json", "/containers/json", "limit"),
               ("GET", "/containers/{id}/logs", f"/containers/{RUN}/logs?stdout=1", "tail"),
               ("GET", "/containers/{id}/logs", f"/containers/{RUN}/logs?stdout=1", "since"),
               ("GET", "/containers/{id}/logs", f"/containers/{RUN}/logs?stdout=1", "until"),
               ("GET", "/events", "/events?until=1", "since"),
               ("GET", "/images/search", "/images/search?term=x", "limit"),
               ("POST", "/build", "/build", "shmsize"),
               ("POST", "/containers/{id}/stop", f"/containers/{IMG}/stop", "t"),
               ("POST", "/containers/{id}/kill", f"/containers/{RUN}/kill", "signal")]


@fuzz_settings(40)
@given(target=st.sampled_from(_QUERY_INTS),
       value=HUGE_INTS.map(str) | st.sampled_from(["1e400", "-1e400", "nan", "inf", "0x10", " 1", "1_000",
                                                   "١٢", "9" * 5000, "", "-", "+1", "1.5"]))
def test_huge_values_in_query(fuzzer: Fuzzer, target: tuple[str, str, str, str], value: str) -> None:
    method, route, url, param = target
    url = url.replace("{exec}", fuzzer.exec_id)
    url += ("&" if "?" in url else "?") + urlencode({param: value})
    fuzzer.send((method, route), method, url,
                data=_tar({"Dockerfile": b"FROM scratch\n"}) if route == "/build" else None)


# --------------------------------------------------------------------------- filters and API versions

FILTERS = st.one_of(
    st.sampled_from(['{"a":', "[]", '"x"', "1", "null", '{"label":[1]}', '{"label":"x"}', '{"until":["x"]}',
                     '{"until":["99999999999999999999999"]}', '{"dangling":["maybe"]}', '{"label":{"a":1}}',
                     "[" * 100_000 + "]" * 100_000, '{"a":' + "9" * 5000 + "}", '{"id":["' + "a" * 5000 + '"]}',
                     '{"before":["nope"]}', '{"since":["../../x"]}', '{"reference":["[["]}', '{"status":["x"]}',
                     '{"driver":["\\u0000"]}', '{"name":["("]}']),
    st.dictionaries(st.sampled_from(["label", "until", "dangling", "id", "name", "status", "before", "since",
                                     "reference", "driver", "type", "scope", "event", "container", "x"]),
                    st.lists(st.text(max_size=10), max_size=2), max_size=3).map(json.dumps),
)
_FILTER_ENDPOINTS = [("GET", "/containers/json"), ("GET", "/images/json"), ("GET", "/networks"),
                     ("GET", "/volumes"), ("GET", "/events"), ("POST", "/containers/prune"),
                     ("POST", "/images/prune"), ("POST", "/networks/prune"), ("POST", "/volumes/prune"),
                     ("POST", "/build/prune"), ("GET", "/images/search")]


@fuzz_settings(40)
@given(route=st.sampled_from(_FILTER_ENDPOINTS), filters=FILTERS)
def test_malformed_filters(fuzzer: Fuzzer, route: tuple[str, str], filters: str) -> None:
    method, path = route
    extra = {"until": "1"} if path == "/events" else {"term": "x"} if path == "/images/search" else {}
    fuzzer.send(route, method, _url(path, filters=filters, **extra))


@fuzz_settings(20)
@given(version=st.sampled_from(["1.99", "0.1", "1.2.3", "99999999999999999999.1", "1.", ".1", "1.44",
                                "1..44", "01.044"]) | st.from_regex(r"[0-9][0-9.]{0,12}", fullmatch=True),
       path=st.sampled_from(["/_ping", "/version", f"/containers/{RUN}/json", f"/volumes/{VOL}"]))
def test_api_versions(fuzzer: Fuzzer, version: str, path: str) -> None:
    op = ("GET", path.replace(RUN, "{id}").replace(VOL, "{name}"))
    fuzzer.send(op, "GET", f"/v{version}{path}")
