"""The CLI side of storage: run/create -v/--mount/--tmpfs/... → create body, the ``volume``
commands, ``system df`` and ``system prune``. Expected values were captured from the docker 28.2
CLI against a recording socket."""

from __future__ import annotations

import argparse
import io
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.cli import system, volumes
from dockyard.cli.main import build_parser, main
from dockyard.cli.mountopts import csv_record, go_ram_in_bytes, parse_mount, parse_volume_spec
from dockyard.cli.runopts import add_run_flags, split_interspersed
from dockyard.errors import InvalidArgument
from tests.fakedaemon import JSONHandler, UnixServer, serve
from tests.runflags import run_body

_body = run_body


def _storage(*argv: str) -> dict[str, Any]:
    body = _body(*argv)
    hc = body["HostConfig"]
    return {"Volumes": body["Volumes"], **{k: hc[k] for k in ("Binds", "VolumeDriver", "VolumesFrom",
                                                             "ReadonlyRootfs", "Tmpfs", "Mounts") if k in hc}}


# ---------------------------------------------------------------- -v / --tmpfs / --volumes-from / ...


def test_no_storage_flags_as_docker() -> None:
    body = _body()
    assert body["Volumes"] == {}
    hc = body["HostConfig"]
    assert hc["Binds"] is None and hc["VolumesFrom"] is None
    assert hc["VolumeDriver"] == "" and hc["ReadonlyRootfs"] is False
    assert "Tmpfs" not in hc and "Mounts" not in hc
    keys = [k for k in hc if k in ("Binds", "AutoRemove", "VolumeDriver", "VolumesFrom", "PublishAllPorts",
                                   "ReadonlyRootfs")]
    assert keys == ["Binds", "AutoRemove", "VolumeDriver", "VolumesFrom", "PublishAllPorts", "ReadonlyRootfs"]


@pytest.mark.parametrize(("argv", "vols", "binds"), [
    (["-v", "/ctr"], {"/ctr": {}}, None),
    (["-v", "vol:/data", "-v", "vol:/data2:ro,nocopy", "-v", "/host:/h:rw,z"], {},
     ["vol:/data", "vol:/data2:ro,nocopy", "/host:/h:rw,z"]),
    (["-v", "~/x:/x", "-v", "/ctr2:ro", "-v", "vol:rel", "-v", "a:b:c:d"], {},
     ["~/x:/x", "/ctr2:ro", "vol:rel", "a:b:c:d"]),
    (["-v", "x", "-v", "ab", "-v", "abc", "-v", "a:/b", "-v", "c:/x"],
     {"a:/b": {}, "ab": {}, "abc": {}, "c:/x": {}, "x": {}}, None),  # one-letter "drive" quirk
    (["-v", "C:\\x:/y"], {}, ["C:\\x:/y"]),
    (["-v", "/a/:/b/", "-v", "/h:/c:rshared", "-v", "/h:/d:foo"], {}, ["/a/:/b/", "/h:/c:rshared", "/h:/d:foo"]),
    (["-v", "vol:/x", "-v", "vol:/x", "-v", "/x", "-v", "/x"], {"/x": {}}, ["vol:/x"]),
    (["-v", "/x", "--volume", "/y"], {"/x": {}, "/y": {}}, None),
])
def test_volume_flag(argv: list[str], vols: dict[str, Any], binds: list[str] | None) -> None:
    got = _storage(*argv)
    assert got["Volumes"] == vols and list(got["Volumes"]) == sorted(vols)
    assert got["Binds"] == binds


def test_relative_bind_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    got = _storage("-v", "./rel:/r", "-v", ".:/x", "-v", "..:/y", "-v", "./a/../b/:/z/", "-v", ".hidden:/h",
                   "-v", ".hidden")
    assert got["Binds"] == [f"{tmp_path}/rel:/r", f"{tmp_path}:/x", f"{tmp_path.parent}:/y", f"{tmp_path}/b:/z/",
                            f"{tmp_path}/.hidden:/h"]
    assert got["Volumes"] == {".hidden": {}}
    mount = _storage("--mount", "type=bind,src=./d,dst=/d", "--mount", "type=volume,src=.v,dst=/v")["Mounts"]
    assert [m["Source"] for m in mount] == [f"{tmp_path}/d", f"{tmp_path}/.v"]


@pytest.mark.parametrize(("spec", "error"), [
    ("", "invalid empty volume spec"),
    ("/a::/b", "invalid spec: /a::/b: empty section between colons"),
    (":/x", "invalid spec: :/x: empty section between colons"),
    ("/x:", "invalid spec: /x:: empty section between colons"),
    ("/a:/b:ro:x", "invalid spec: /a:/b:ro:x: too many colons"),
])
def test_volume_flag_errors(spec: str, error: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        _body("-v", spec)
    assert str(exc.value) == error
    assert getattr(exc.value, "exit_code", 125) == 125


def test_volume_spec_types() -> None:
    assert parse_volume_spec("/ctr") == ("", "volume")
    assert parse_volume_spec("vol:/d:ro") == ("vol", "volume")
    assert parse_volume_spec("/h:/d") == ("/h", "bind")
    assert parse_volume_spec("~/h:/d") == ("~/h", "bind")
    assert parse_volume_spec("C:\\h:/d") == ("C:\\h", "bind")


def test_tmpfs_volumes_from_read_only_driver() -> None:
    got = _storage("--tmpfs", "/t", "--tmpfs", "/t2:size=10m,mode=1777", "--tmpfs", "/t3:rw", "--tmpfs", "/t3:ro",
                   "--tmpfs", "/a:b:c", "--volumes-from", "c1", "--volumes-from", "c2:ro", "--read-only",
                   "--volume-driver", "foo")
    assert got["Tmpfs"] == {"/a": "b:c", "/t": "", "/t2": "size=10m,mode=1777", "/t3": "ro"}
    assert list(got["Tmpfs"]) == sorted(got["Tmpfs"])
    assert got["VolumesFrom"] == ["c1", "c2:ro"]
    assert got["ReadonlyRootfs"] is True and got["VolumeDriver"] == "foo"
    assert _storage("--read-only=false")["ReadonlyRootfs"] is False
    assert _storage("--read-only=1")["ReadonlyRootfs"] is True
    assert _storage("--volumes-from", "")["VolumesFrom"] == [""]


def test_storage_flags_split_before_command() -> None:
    p = argparse.ArgumentParser(add_help=False)
    add_run_flags(p)
    head, rest = split_interspersed(p, ["-v", "/x", "--read-only", "--mount", "dst=/m", "--tmpfs", "/t",
                                        "busybox", "echo", "-v", "/y", "--read-only"])
    assert head[-1] == "busybox" and rest == ["echo", "-v", "/y", "--read-only"]
    head, rest = split_interspersed(p, ["--read-only", "busybox", "true"])
    assert head == ["--read-only", "busybox"] and rest == ["true"]


# ---------------------------------------------------------------- --mount


@pytest.mark.parametrize(("value", "mount"), [
    ("type=bind,src=/s,dst=/d,ro", {"Type": "bind", "Source": "/s", "Target": "/d", "ReadOnly": True}),
    ("dst=/x", {"Type": "volume", "Target": "/x"}),
    ("type=foo,dst=/x", {"Type": "foo", "Target": "/x"}),  # the daemon judges the type
    ("type=volume,src=v,dst=/x,volume-driver=d,volume-opt=a=b,volume-opt=c,volume-opt==z,volume-label=l=1,"
     "volume-label=m,volume-nocopy,volume-subpath=sub",
     {"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {
         "NoCopy": True, "Labels": {"l": "1", "m": ""}, "Subpath": "sub",
         "DriverConfig": {"Name": "d", "Options": {"a": "b", "c": ""}}}}),
    ("type=volume,dst=/x,volume-nocopy=false", {"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {}}}),
    ("type=volume,dst=/x,volume-label==v,volume-driver=",
     {"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {}}}),
    ("type=bind,source=/r,target=/x,readonly=false,consistency=Cached,bind-propagation=RSHARED",
     {"Type": "bind", "Source": "/r", "Target": "/x", "Consistency": "cached", "BindOptions": {"Propagation": "rshared"}}),
    ("type=bind,src=/a,dst=/x,bind-nonrecursive", {"Type": "bind", "Source": "/a", "Target": "/x",
                                                   "BindOptions": {"NonRecursive": True}}),
    ("type=bind,src=/a,dst=/x,bind-recursive=disabled", {"Type": "bind", "Source": "/a", "Target": "/x",
                                                         "BindOptions": {"NonRecursive": True}}),
    ("type=bind,src=/a,dst=/x,bind-recursive=enabled", {"Type": "bind", "Source": "/a", "Target": "/x"}),
    ("type=bind,src=/a,dst=/x,bind-recursive=writable,ro",
     {"Type": "bind", "Source": "/a", "Target": "/x", "ReadOnly": True, "BindOptions": {"ReadOnlyNonRecursive": True}}),
    ("type=bind,src=/a,dst=/x,bind-recursive=readonly,ro,bind-propagation=rprivate",
     {"Type": "bind", "Source": "/a", "Target": "/x", "ReadOnly": True,
      "BindOptions": {"Propagation": "rprivate", "ReadOnlyForceRecursive": True}}),
    ("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770",
     {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 67108864, "Mode": 0o1770}}),
    ("type=tmpfs,dst=/t,tmpfs-size=1.5g", {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1610612736}}),
    ("type=tmpfs,dst=/t,tmpfs-size=0,tmpfs-mode=0", {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {}}),
    ("type=image,src=busybox,dst=/x,image-subpath=/bin",
     {"Type": "image", "Source": "busybox", "Target": "/x", "ImageOptions": {"Subpath": "/bin"}}),
    ("Type=VOLUME,DST=/x,RO=1", {"Type": "volume", "Target": "/x", "ReadOnly": True}),
    ("type=volume,dst=/x,readonly=T", {"Type": "volume", "Target": "/x", "ReadOnly": True}),
    ("type=volume,dst=/x,src=", {"Type": "volume", "Target": "/x"}),
    ("type=bind,src=~/a,dst=/x", {"Type": "bind", "Source": "~/a", "Target": "/x"}),
    ('"type=bind,src=/a,b",dst=/x', {"Type": "bind,src=/a,b", "Target": "/x"}),
    ('type=volume,"dst=/x""y"', {"Type": "volume", "Target": '/x"y'}),
    ('dst=/x,"ro"', {"Type": "volume", "Target": "/x", "ReadOnly": True}),
    ('type=volume,dst=/x,"volume-opt=o=addr=1.2.3.4,rw"',
     {"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Options": {"o": "addr=1.2.3.4,rw"}}}}),
    ("dst=/x\nro", {"Type": "volume", "Target": "/x"}),  # only the first CSV record counts
])
def test_mount_flag(value: str, mount: dict[str, Any]) -> None:
    got = parse_mount(value)
    assert got == mount
    assert json.dumps(got) == json.dumps(mount)  # Go's field order too


@pytest.mark.parametrize(("value", "error"), [
    ("type=volume,dst=/x,volume-nocopy=maybe", "invalid value for volume-nocopy: maybe"),
    ("type=bind,src=/a,dst=/x,bind-nonrecursive=x", "invalid value for bind-nonrecursive: x"),
    ("type=bind,src=/a,dst=/x,bind-recursive=writable",
     "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"),
    ("type=bind,src=/a,dst=/x,bind-recursive=readonly",
     "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction"),
    ("type=bind,src=/a,dst=/x,bind-recursive=readonly,ro",
     "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction"),
    ("type=bind,src=/a,dst=/x,bind-recursive=foo",
     'invalid value for bind-recursive: foo (must be "enabled", "disabled", "writable", or "readonly")'),
    ("type=tmpfs,dst=/t,tmpfs-size=abc", "invalid value for tmpfs-size: abc"),
    ("type=tmpfs,dst=/t,tmpfs-size=-1", "invalid value for tmpfs-size: -1"),
    ("type=tmpfs,dst=/t,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
    ("type=tmpfs,dst=/t,tmpfs-mode=0o17", "invalid value for tmpfs-mode: 0o17"),
    ("type=bind,src=/a", "target is required"),
    ("type=,dst=/x", "type is required"),
    ("type=bind,dst=/x,volume-driver=x", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=volume,dst=/x,bind-propagation=x", "cannot mix 'bind-*' options with mount type 'volume'"),
    ("type=volume,dst=/x,tmpfs-size=1", "cannot mix 'tmpfs-*' options with mount type 'volume'"),
    ("type=bind,dst=/x,image-subpath=a", "cannot mix 'image-*' options with mount type 'bind'"),
    ("type=volume,dst=/x,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
    ("type=volume, dst=/x", "unexpected key ' dst' in ' dst=/x'"),
    ("type=volume,dst=/x,foo", "invalid field 'foo' must be a key=value pair"),
    ("type=volume,dst=/x,,ro", "invalid field '' must be a key=value pair"),
    ("dst=/x,ro,", "invalid field '' must be a key=value pair"),
    ("type=volume,dst=/x,ro=yes", "invalid value for ro: yes"),
    ("", "EOF"),
    ("\n", "EOF"),
    ('type=bind,src="/a', 'parse error on line 1, column 15: bare " in non-quoted-field'),
    ('type=volume,dst="/x"y', 'parse error on line 1, column 17: bare " in non-quoted-field'),
    ('"type=volume,dst=/x', 'parse error on line 1, column 20: extraneous or missing " in quoted-field'),
    ('é=1,src="a', 'parse error on line 1, column 10: bare " in non-quoted-field'),
    (' "dst=/x"', 'parse error on line 1, column 2: bare " in non-quoted-field'),
    ('"dst=/x"  ,ro', 'parse error on line 1, column 8: extraneous or missing " in quoted-field'),
])
def test_mount_flag_errors(value: str, error: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        _body("--mount", value)
    quoted = json.dumps(value, ensure_ascii=False)
    assert str(exc.value) == f'invalid argument {quoted} for "--mount" flag: {error}'
    assert getattr(exc.value, "exit_code", None) == 125


def test_mounts_keep_their_order() -> None:
    got = _storage("--mount=type=bind,src=/a,dst=/b", "--mount", "type=volume,target=/c,volume-opt=o=addr=1.2.3.4,"
                   "volume-opt=type=nfs")["Mounts"]
    assert got == [{"Type": "bind", "Source": "/a", "Target": "/b"},
                   {"Type": "volume", "Target": "/c",
                    "VolumeOptions": {"DriverConfig": {"Options": {"o": "addr=1.2.3.4", "type": "nfs"}}}}]


def test_csv_and_sizes() -> None:
    assert csv_record('a,"b,c",""') == ["a", "b,c", ""]
    assert csv_record("\n\nx,y\nz") == ["x", "y"]
    assert go_ram_in_bytes("10KiB") == 10240 and go_ram_in_bytes("1 kb") == 1024 and go_ram_in_bytes("100") == 100
    with pytest.raises(ValueError):
        go_ram_in_bytes("1  kb")


def test_bind_nonrecursive_warns(capsys: pytest.CaptureFixture[str]) -> None:
    parse_mount("type=bind,src=/a,dst=/x,bind-nonrecursive=true")
    assert 'level=warning msg="bind-nonrecursive is deprecated, use bind-recursive=disabled instead"' in \
        capsys.readouterr().err


# ---------------------------------------------------------------- volume create / ls / inspect


def _volume_args(*argv: str) -> argparse.Namespace:
    return build_parser("volume").parse_args(["volume", *argv])


def test_volume_create_body() -> None:
    assert volumes.create_volume_body(_volume_args("create")) == {"Driver": "local"}
    body = volumes.create_volume_body(_volume_args("create", "-d", "foo", "--label", "c", "--label", "a=b", "-o", "z",
                                                   "-o", "x=y", "myname"))
    assert json.dumps(body) == json.dumps({"Driver": "foo", "DriverOpts": {"x": "y", "z": ""},
                                           "Labels": {"a": "b", "c": ""}, "Name": "myname"})
    assert volumes.create_volume_body(_volume_args("create", "-d", "", "x")) == {"Name": "x"}
    assert volumes.create_volume_body(_volume_args("create", "--name", "a")) == {"Driver": "local", "Name": "a"}
    with pytest.raises(InvalidArgument, match="cannot specify a volume-name through both --name and as a positional"):
        volumes.create_volume_body(_volume_args("create", "--name", "a", "b"))
    for label, msg in (("=x", "invalid label '=x': empty name"), ("a b=x", "label 'a b' contains whitespaces")):
        with pytest.raises(InvalidArgument) as exc:
            volumes.create_volume_body(_volume_args("create", "--label", label, "a"))
        assert str(exc.value) == f'invalid argument "{label}" for "--label" flag: {msg}'
        assert getattr(exc.value, "exit_code", None) == 125


_VOLS = [
    {"CreatedAt": "2024-05-01T10:00:00Z", "Driver": "local", "Labels": {"a": "b"}, "Mountpoint": "/m/v10",
     "Name": "v10", "Options": None, "Scope": "local"},
    {"CreatedAt": "2024-05-01T10:00:00Z", "Driver": "local", "Labels": None, "Mountpoint": "/m/v2", "Name": "v2",
     "Options": {}, "Scope": "local"},
    {"CreatedAt": "2024-05-01T10:00:00Z", "Driver": "other", "Labels": {}, "Mountpoint": "/m/a",
     "Name": "a_much_longer_volume_name_here", "Options": None, "Scope": "global"},
]


def test_volume_ls_output() -> None:
    assert volumes.render_volumes(_VOLS, None, False) == (
        "DRIVER    VOLUME NAME\n"
        "other     a_much_longer_volume_name_here\n"
        "local     v2\n"
        "local     v10\n")
    assert volumes.render_volumes(_VOLS, None, True) == "a_much_longer_volume_name_here\nv2\nv10\n"
    assert volumes.render_volumes(_VOLS, "table", True) == "a_much_longer_volume_name_here\nv2\nv10\n"
    assert volumes.render_volumes(_VOLS, "{{.Driver}}", True) == "other\nlocal\nlocal\n"
    assert volumes.render_volumes(_VOLS[:1], "raw", False) == "name: v10\ndriver: local\n\n"
    assert volumes.render_volumes(_VOLS[2:], "json", False) == (
        '{"Availability":"N/A","Driver":"other","Group":"N/A","Labels":"","Links":"N/A","Mountpoint":"/m/a",'
        '"Name":"a_much_longer_volume_name_here","Scope":"global","Size":"N/A","Status":"N/A"}\n')
    assert volumes.render_volumes(_VOLS[:1], "{{.Name}}|{{.Labels}}|{{.Links}}|{{.Size}}|{{.Label \"a\"}}", False) == \
        "v10|a=b|N/A|N/A|b\n"
    used = {**_VOLS[0], "UsageData": {"RefCount": 2, "Size": 123456789}}
    assert volumes.render_volumes([used], "{{.Links}} {{.Size}}", False) == "2 123.5MB\n"
    assert volumes.render_volumes([], None, False) == "DRIVER    VOLUME NAME\n"


def test_volume_inspect_output() -> None:
    raw = {"CreatedAt": "2024-05-01T10:00:00Z", "Driver": "local", "Labels": {"z": "1", "a": "b<c"},
           "Mountpoint": "/m", "Name": "myvol", "Options": None, "Scope": "local", "Extra": 1}
    typed = volumes.typed_volume(raw)
    assert list(typed) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert volumes.render_inspect([typed], None) == (
        '[\n    {\n        "CreatedAt": "2024-05-01T10:00:00Z",\n        "Driver": "local",\n'
        '        "Labels": {\n            "a": "b\\u003cc",\n            "z": "1"\n        },\n'
        '        "Mountpoint": "/m",\n        "Name": "myvol",\n        "Options": null,\n'
        '        "Scope": "local"\n    }\n]\n')
    assert volumes.render_inspect([typed], "json").startswith('[{"CreatedAt":"2024-05-01T10:00:00Z","Driver"')
    assert volumes.render_inspect([typed], "{{.Name}} {{.Labels}} {{json .Options}}") == "myvol map[a:b<c z:1] null\n"
    assert volumes.render_inspect([], None) == "[]\n"
    assert volumes.render_inspect([], "json") == "[]\n"
    assert volumes.render_inspect([], "{{.Name}}") == "\n"
    with_usage = volumes.typed_volume({**raw, "UsageData": {"Size": 5, "RefCount": 1}, "Status": {"b": 1, "a": 2}})
    assert list(with_usage)[-2:] == ["Status", "UsageData"]
    assert with_usage["UsageData"] == {"RefCount": 1, "Size": 5} and list(with_usage["Status"]) == ["a", "b"]


# ---------------------------------------------------------------- system df

_DU: dict[str, Any] = {
    "LayersSize": 123456789,
    "Images": [
        {"Id": "sha256:" + "a" * 64, "RepoTags": ["busybox:latest", "busybox:1.36"],
         "RepoDigests": ["busybox@sha256:" + "b" * 64], "Created": 1700000000, "Size": 4261550, "SharedSize": 0,
         "Containers": 2},
        {"Id": "sha256:" + "c" * 64, "RepoTags": [], "RepoDigests": [], "Created": 1600000000, "Size": 77800000,
         "SharedSize": 4261550, "Containers": 0},
        {"Id": "sha256:" + "d" * 64, "RepoTags": ["docker.io/library/alpine:3.19"], "RepoDigests": [],
         "Created": 1710000000, "Size": 7000000, "SharedSize": -1, "Containers": -1},
        {"Id": "sha256:" + "e" * 64, "RepoTags": ["myreg:5000/foo/bar:v1"], "RepoDigests": [], "Created": 1710000000,
         "Size": 1000, "SharedSize": 0, "Containers": 0},
        {"Id": "sha256:" + "f" * 64, "RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"],
         "Created": 1710000000, "Size": 1000, "SharedSize": 0, "Containers": 0},
    ],
    "Containers": [
        {"Id": "1" * 64, "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:" + "a" * 64,
         "Command": "sh -c 'sleep 1000 && echo done'", "Created": 1720000000, "SizeRw": 12345, "SizeRootFs": 4273895,
         "State": "running", "Status": "Up 2 hours",
         "Mounts": [{"Type": "volume", "Name": "v10", "Driver": "local"}, {"Type": "bind", "Source": "/h"}]},
        {"Id": "2" * 64, "Names": ["/old"], "Image": "sha256:" + "c" * 64, "ImageID": "sha256:" + "c" * 64,
         "Command": "true", "Created": 1600000000, "SizeRw": 0, "SizeRootFs": 0, "State": "exited",
         "Status": "Exited (0) 3 years ago", "Mounts": []},
    ],
    "Volumes": [
        {"Driver": "local", "Name": "v10", "Mountpoint": "/m/v10", "UsageData": {"RefCount": 1, "Size": 2048000}},
        {"Driver": "local", "Name": "v2", "Mountpoint": "/m/v2", "UsageData": {"RefCount": 0, "Size": 1000}},
        {"Driver": "local", "Name": "a_long_volume_name_here", "Mountpoint": "/m/a",
         "UsageData": {"RefCount": 0, "Size": -1}},
    ],
    "BuildCache": [
        {"ID": "zz1234567890abcdef", "Parent": "", "Parents": [], "Type": "regular",
         "Description": "mount / from exec /bin/sh -c echo hi", "InUse": False, "Shared": False, "Size": 5000,
         "CreatedAt": "2024-01-01T00:00:00.123456789Z", "LastUsedAt": "2024-06-01T00:00:00Z", "UsageCount": 3},
        {"ID": "aa1234567890abcdef", "Parent": "zz1234567890abcdef", "Parents": ["zz1234567890abcdef"],
         "Type": "source.local", "Description": "local source for context", "InUse": True, "Shared": True,
         "Size": 7000, "CreatedAt": "2024-01-01T00:00:00Z", "LastUsedAt": None, "UsageCount": 1},
        {"ID": "bb", "Parent": "", "Type": "regular", "Description": "x", "InUse": True, "Shared": False, "Size": 100,
         "CreatedAt": "2024-01-01T00:00:00Z", "LastUsedAt": "2024-06-01T00:00:00Z", "UsageCount": 0},
    ],
}


@pytest.fixture
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dockyard.cli.formatting.time.time", lambda: 1795860000.0)


def test_df_summary() -> None:
    assert system.render_df(_DU, None, False) == (
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"
        "Images          5         1         123.5MB   119.2MB (96%)\n"
        "Containers      2         1         12.35kB   0B (0%)\n"
        "Local Volumes   3         1         2.049MB   1kB (0%)\n"
        "Build Cache     3         2         5.1kB     5kB\n")
    assert system.render_df(_DU, "json", False).splitlines()[3] == \
        '{"Active":"2","Reclaimable":"5kB","Size":"5.1kB","TotalCount":"3","Type":"Build Cache"}'
    assert system.render_df(_DU, "raw", False).startswith(
        "type: Images\ntotal: 5\nactive: 1\nsize: 123.5MB\nreclaimable: 119.2MB (96%)\n\ntype: Containers\n")
    assert system.render_df({}, None, False).splitlines()[1:] == [
        "Images          0         0         0B        0B", "Containers      0         0         0B        0B",
        "Local Volumes   0         0         0B        0B", "Build Cache     0         0         0B        0B"]


def test_df_verbose_table(fixed_now: None) -> None:
    assert system.render_df(_DU, None, True) == (
        "Images space usage:\n\n"
        "REPOSITORY           TAG       IMAGE ID       CREATED       SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS\n"
        "busybox              latest    aaaaaaaaaaaa   3 years ago   4.26MB    0B            4.262MB       2\n"
        "<none>               <none>    cccccccccccc   6 years ago   77.8MB    4.262MB       73.54MB       0\n"
        "alpine               3.19      dddddddddddd   2 years ago   7MB       N/A           N/A           N/A\n"
        "myreg:5000/foo/bar   v1        eeeeeeeeeeee   2 years ago   1kB       0B            1kB           0\n"
        "<none>               <none>    ffffffffffff   2 years ago   1kB       0B            1kB           0\n"
        "\nContainers space usage:\n\n"
        "CONTAINER ID   IMAGE          COMMAND                  LOCAL VOLUMES   SIZE      CREATED       "
        "STATUS                   NAMES\n"
        "111111111111   busybox        \"sh -c 'sleep 1000 &…\"   1               12.3kB    2 years ago   "
        "Up 2 hours               web\n"
        "222222222222   cccccccccccc   \"true\"                   0               0B        6 years ago   "
        "Exited (0) 3 years ago   old\n"
        "\nLocal Volumes space usage:\n\n"
        "VOLUME NAME               LINKS     SIZE\n"
        "v10                       1         2.048MB\n"
        "v2                        0         1kB\n"
        "a_long_volume_name_here   0         -1B\n"
        "\nBuild cache usage: 5.1kB\n\n"
        "CACHE ID        CACHE TYPE     SIZE      CREATED       LAST USED     USAGE     SHARED\n"
        "aa1234567890*   source.local   7kB       2 years ago                 1         true\n"
        "bb*             regular        100B      2 years ago   2 years ago   0         false\n"
        "zz1234567890    regular        5kB       2 years ago   2 years ago   3         false\n")
    empty = system.render_df({}, None, True)
    assert empty.endswith("\nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\n\nBuild cache usage: 0B\n\n"
                          "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n")


def test_df_verbose_formats(fixed_now: None) -> None:
    got = system.render_df(_DU, "{{range .BuildCache}}{{.Description}}|{{.ID}}|{{.CreatedAt}}|{{.LastUsedAt}}|"
                           "{{.Parent}};{{end}}{{range .Volumes}}{{.Name}}{{end}}", True)
    assert got == ("local source for context|aa1234567890abcdef*|2024-01-01 00:00:00 +0000 UTC||zz1234567890abcdef;"
                   "x|bb*|2024-01-01 00:00:00 +0000 UTC|2024-06-01 00:00:00 +0000 UTC|;mount / from exec /bin/sh -c "
                   "echo hi|zz1234567890abcdef|2024-01-01 00:00:00.123456789 +0000 UTC|2024-06-01 00:00:00 +0000 UTC|;"
                   "v10v2a_long_volume_name_here")  # no newline added, as docker
    as_json = json.loads(system.render_df(_DU, "json", True))
    assert list(as_json) == ["Images", "Containers", "Volumes", "BuildCache"]
    assert as_json["Images"][0]["ID"] == "sha256:" + "a" * 64 and as_json["Images"][0]["UniqueSize"] == "4.262MB"
    assert list(as_json["Containers"][0]) == sorted(as_json["Containers"][0])
    assert as_json["Containers"][1]["Image"] == "sha256:" + "c" * 64
    raw = system.render_df(_DU, "raw", True)
    assert ("type: Volume\nname: v10\ndriver: local\n\n" in raw and
            "type: Container\ncontainer_id: " + "2" * 64 + "\nimage: sha256:" + "c" * 64 + "\ncommand: \"true\"\n"
            in raw and "state: exited\nstatus: Exited (0) 3 years ago\nnames: old\nlabels:\nports:\nsize: 0B\n\n" in raw)
    assert raw.endswith("in_use: false\nshared: false\n\n")


def test_reference_parsing() -> None:
    assert system.split_reference("busybox:latest") == ("busybox", "latest")
    assert system.split_reference("docker.io/library/alpine:3.19") == ("alpine", "3.19")
    assert system.split_reference("docker.io/foo/bar") == ("foo/bar", None)
    assert system.split_reference("localhost:5000/x@sha256:" + "a" * 64) == ("localhost:5000/x", None)
    assert system.split_reference("Bad/Name:x") is None
    assert system.truncate_id("sha256:" + "a" * 64) == "a" * 12 and system.truncate_id("bb") == "bb"


# ---------------------------------------------------------------- commands against a fake daemon


class _Handler(JSONHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.calls.append((self.command, self.path, body))  # type: ignore[attr-defined]
        path = self.path.split("?")[0].removeprefix("/v1.45")
        replies: dict[tuple[str, str], tuple[int, Any]] = {
            ("POST", "/volumes/create"): (201, {"Name": "myvol", "Driver": "local"}),
            ("GET", "/volumes"): (200, {"Volumes": _VOLS, "Warnings": None}),
            ("GET", "/volumes/myvol"): (200, _VOLS[0]),
            ("GET", "/volumes/nope"): (404, {"message": "get nope: no such volume"}),
            ("DELETE", "/volumes/bad"): (404, {"message": "get bad: no such volume"}),
            ("DELETE", "/volumes/inuse"): (409, {"message": "remove inuse: volume is in use - [abc]"}),
            ("POST", "/volumes/prune"): (200, {"VolumesDeleted": ["v1", "v2"], "SpaceReclaimed": 1234}),
            ("POST", "/containers/prune"): (200, {"ContainersDeleted": ["c1"], "SpaceReclaimed": 100}),
            ("POST", "/networks/prune"): (200, {"NetworksDeleted": ["n1"]}),
            ("POST", "/images/prune"): (200, {"ImagesDeleted": [{"Untagged": "foo:latest"}, {"Deleted": "sha256:abc"}],
                                              "SpaceReclaimed": 5000000}),
            ("POST", "/build/prune"): (200, {"CachesDeleted": ["b1"], "SpaceReclaimed": 2000}),
        }
        status, out = replies.get((self.command, path), (204, None))
        if out is None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_json(status, out)

    do_GET = do_POST = do_DELETE = _reply


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, UnixServer]]:
    sock = tmp_path / "d.sock"
    with serve(sock, _Handler, calls=[]) as srv:
        yield f"unix://{sock}", srv


def _calls(srv: UnixServer) -> list[tuple[str, str, bytes]]:
    calls: list[tuple[str, str, bytes]] = srv.calls  # type: ignore[attr-defined]
    return calls


def test_volume_commands(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str]) -> None:
    host, srv = daemon
    calls = _calls(srv)
    assert main(["-H", host, "volume", "create", "--label", "a=b", "myvol"]) == 0
    assert capfd.readouterr().out == "myvol\n"
    assert calls[-1][:2] == ("POST", "/v1.45/volumes/create")
    assert json.loads(calls[-1][2]) == {"Driver": "local", "Labels": {"a": "b"}, "Name": "myvol"}

    assert main(["-H", host, "volume", "list", "-q", "-f", "name=x", "-f", "dangling=true", "-f", "label=a=b"]) == 0
    assert capfd.readouterr().out == "a_much_longer_volume_name_here\nv2\nv10\n"
    assert calls[-1][1] == ("/v1.45/volumes?filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%2C%22label%22%3A%7B"
                            "%22a%3Db%22%3Atrue%7D%2C%22name%22%3A%7B%22x%22%3Atrue%7D%7D")

    assert main(["-H", host, "volume", "inspect", "-f", "{{.Name}}", "myvol", "nope"]) == 1
    out = capfd.readouterr()
    assert (out.out, out.err) == ("v10\n", "Error response from daemon: get nope: no such volume\n")

    assert main(["-H", host, "volume", "rm", "a", "bad", "inuse", "b"]) == 1
    out = capfd.readouterr()
    assert out.out == "a\nb\n"
    assert out.err == ("Error response from daemon: get bad: no such volume\n"
                       "Error response from daemon: remove inuse: volume is in use - [abc]\n")
    assert main(["-H", host, "volume", "remove", "-f", "a"]) == 0
    assert calls[-1][:2] == ("DELETE", "/v1.45/volumes/a?force=1")
    capfd.readouterr()

    assert main(["-H", host, "volume", "prune", "-a", "-f", "--filter", "label=x"]) == 0
    assert capfd.readouterr().out == "Deleted Volumes:\nv1\nv2\n\nTotal reclaimed space: 1.234kB\n"
    assert calls[-1][1] == ("/v1.45/volumes/prune?filters=%7B%22all%22%3A%7B%22true%22%3Atrue%7D%2C%22label%22%3A%7B"
                            "%22x%22%3Atrue%7D%7D")


def test_volume_errors(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str]) -> None:
    host, srv = daemon
    assert main(["-H", host, "volume", "ls", "-f", "foo"]) == 125
    assert capfd.readouterr().err == ('Error: invalid argument "foo" for "-f, --filter" flag: bad format of filter '
                                      "(expected name=value)\n")
    assert main(["-H", host, "volume", "prune", "-a", "-f", "--filter", "all=1"]) == 1
    assert capfd.readouterr().err == "Error: conflicting options: cannot specify both --all and --filter all=1\n"
    assert main(["-H", host, "system", "prune", "-f", "--volumes", "--filter", "until=1h"]) == 1
    assert capfd.readouterr().err == 'ERROR: The "until" filter is not supported with "--volumes"\n'
    assert _calls(srv) == []


@pytest.mark.parametrize(("argv", "warning"), [
    (["volume", "prune"], "WARNING! This will remove anonymous local volumes not used by at least one container.\n"),
    (["volume", "prune", "-a"], "WARNING! This will remove all local volumes not used by at least one container.\n"),
    (["system", "prune"], "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at "
     "least one container\n  - all dangling images\n  - unused build cache\n\n"),
    (["system", "prune", "-a", "--volumes", "--filter", "label=a=b", "--filter", "label!=c", "--filter", "foo=bar",
      "--filter", "label=a10", "--filter", "label=a9"],
     "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n"
     "  - all anonymous volumes not used by at least one container\n  - all images without at least one container "
     "associated to them\n  - all build cache\n\n  Items to be pruned will be filtered with:\n  - label!=c\n"
     "  - label=a9\n  - label=a10\n  - label=a=b\n\n"),  # natural order: digits first
])
def test_prune_prompts(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch, argv: list[str], warning: str) -> None:
    host, srv = daemon
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["-H", host, *argv]) == 0
    assert capfd.readouterr().out == warning + "Are you sure you want to continue? [y/N] "
    assert _calls(srv) == []


def test_system_prune(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    host, srv = daemon
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["-H", host, "system", "prune", "-a", "--volumes", "--filter", "label=x"]) == 0
    out = capfd.readouterr().out
    assert out.endswith("[y/N] Deleted Containers:\nc1\n\nDeleted Networks:\nn1\n\nDeleted Volumes:\nv1\nv2\n\n"
                        "Deleted Images:\nuntagged: foo:latest\ndeleted: sha256:abc\n\n"
                        "Deleted build cache objects:\nb1\n\nTotal reclaimed space: 5.003MB\n")
    paths = [p.split("?")[0] for _, p, _ in _calls(srv)]
    assert paths == ["/v1.45/containers/prune", "/v1.45/networks/prune", "/v1.45/volumes/prune",
                     "/v1.45/images/prune", "/v1.45/build/prune"]
    calls = _calls(srv)
    assert "all%22" not in calls[2][1]  # system prune --volumes leaves named volumes alone
    assert "dangling" in calls[3][1] and "false" in calls[3][1] and "all=1" in calls[4][1]
    assert main(["-H", host, "system", "prune", "-f"]) == 0
    assert capfd.readouterr().out.endswith("Total reclaimed space: 5.002MB\n")
    assert "/volumes/prune" not in " ".join(p for _, p, _ in _calls(srv)[5:])


# ---------------------------------------------------------------- registration


def test_groups_and_cp_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    full = build_parser()  # every command's flags set up, cp's module or not
    assert full.parse_args(["volume", "ls"]).subcommand == "ls" and full.parse_args(["cp", "a", "b"]).fn
    sub = build_parser("volume")
    for name in ("create", "ls", "list", "inspect", "rm", "remove", "prune"):
        assert sub.parse_args(["volume", name, *(["x"] if name in ("inspect", "rm", "remove") else [])]).fn
    assert build_parser("system").parse_args(["system", "prune", "-af", "--volumes"]).volumes is True

    fake = types.ModuleType("dockyard.cli.cp")
    seen: list[Any] = []

    def add_cp_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("-a", "--archive", action="store_true")
        p.add_argument("src")
        p.add_argument("dst")

    def cmd_cp(c: Any, a: argparse.Namespace) -> int:
        seen.append((a.archive, a.src, a.dst))
        return 0
    fake.add_cp_flags = add_cp_flags  # type: ignore[attr-defined]
    fake.cmd_cp = cmd_cp  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dockyard.cli.cp", fake)
    assert main(["cp", "-a", "ctr:/etc/hosts", "-"]) == 0
    assert main(["container", "cp", "./f", "ctr:/tmp"]) == 0
    assert seen == [(True, "ctr:/etc/hosts", "-"), (False, "./f", "ctr:/tmp")]
