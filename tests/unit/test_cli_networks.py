"""The CLI side of networking: run/create network flags → create body, ``network`` command bodies
and output, ``port``. Expected values were captured from the docker 28 CLI against a recording
socket."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.cli import networks
from dockyard.cli.main import main
from dockyard.cli.netopts import natural_sorted, parse_ip, valid_mac
from dockyard.cli.runopts import add_run_flags, split_interspersed
from dockyard.errors import InvalidArgument
from tests.fakedaemon import JSONHandler, UnixServer, serve
from tests.runflags import run_body

_body = run_body


def _ports(*argv: str) -> tuple[Any, Any]:
    body = _body(*argv)
    return body.get("ExposedPorts"), body["HostConfig"]["PortBindings"]


def _b(ip: str, port: str) -> dict[str, str]:
    return {"HostIp": ip, "HostPort": port}


# ---------------------------------------------------------------- -p / --expose / -P


@pytest.mark.parametrize(("argv", "bindings"), [
    (["-p", "80"], {"80/tcp": [_b("", "")]}),
    (["-p", "18080:80"], {"80/tcp": [_b("", "18080")]}),
    (["-p", "127.0.0.1:18080:80"], {"80/tcp": [_b("127.0.0.1", "18080")]}),
    (["-p", "127.0.0.1::80"], {"80/tcp": [_b("127.0.0.1", "")]}),
    (["-p", ":80"], {"80/tcp": [_b("", "")]}),
    (["-p", "80/udp", "-p", "80/tcp", "-p", "53:53/sctp"],
     {"53/sctp": [_b("", "53")], "80/tcp": [_b("", "")], "80/udp": [_b("", "")]}),
    (["-p", "8000-8002:9000-9002"],
     {"9000/tcp": [_b("", "8000")], "9001/tcp": [_b("", "8001")], "9002/tcp": [_b("", "8002")]}),
    (["-p", "8000-8002:9000"], {"9000/tcp": [_b("", "8000-8002")]}),  # a host range for one port
    (["-p", "9000-9001"], {"9000/tcp": [_b("", "")], "9001/tcp": [_b("", "")]}),
    (["-p", "1.2.3.4:8000-8001:80-81/udp"],
     {"80/udp": [_b("1.2.3.4", "8000")], "81/udp": [_b("1.2.3.4", "8001")]}),
    (["-p", "[::1]:80:80"], {"80/tcp": [_b("::1", "80")]}),
    (["-p", "[::1]::80"], {"80/tcp": [_b("::1", "")]}),
    (["-p", "::1:80:80"], {"80/tcp": [_b("::1", "80")]}),
    (["-p", "[]:80:80"], {"80/tcp": [_b("", "80")]}),
    (["-p", "0.0.0.0:80:80", "-p", "[::]:80:80"], {"80/tcp": [_b("0.0.0.0", "80"), _b("::", "80")]}),
    (["-p", "18080:80", "-p", "18081:80"], {"80/tcp": [_b("", "18080"), _b("", "18081")]}),
    (["-p", "8080:80/Udp"], {"80/udp": [_b("", "8080")]}),
    (["-p", "080:0080"], {"80/tcp": [_b("", "80")]}),
    (["-p", "80:80/"], {"80/tcp": [_b("", "80")]}),
    (["-p", "published=8080,target=80,protocol=udp"], {"80/udp": [_b("", "8080")]}),
])
def test_publish_like_docker(argv: list[str], bindings: dict[str, Any]) -> None:
    exposed, got = _ports(*argv)
    assert got == bindings
    assert list(got) == sorted(got)  # Go encodes map keys sorted
    assert exposed == {key: {} for key in bindings}


@pytest.mark.parametrize(("spec", "error"), [
    ("abc:80", "invalid hostPort: abc"),
    ("80:abc", "invalid containerPort: abc"),
    ("70000:80", "invalid hostPort: 70000"),
    ("65536", "invalid containerPort: 65536"),
    ("9002-9000:80", "invalid hostPort: 9002-9000"),
    ("80-", "invalid containerPort: 80-"),
    (" 80", "invalid containerPort:  80"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("localhost:80:80", "invalid IP address: localhost"),
    ("a:b:c:d", "invalid IP address: a:b"),
    ("127.0.0.1:80", "invalid hostPort: 127.0.0.1"),
    ("[::1]:80", "invalid IP address [:: address [::: missing ']' in address"),
    ("[::1]x:80:80", "invalid IP address [::1]x: address [::1]x:: missing port in address"),
    ("80/xyz", "invalid proto: xyz"),
    ("", "no port specified: <empty>"),
    ("8000:9000-9002", "invalid ranges specified for container and host Ports: 9000-9002 and 8000"),
    ("8000-8003:9000-9002", "invalid ranges specified for container and host Ports: 9000-9002 and 8000-8003"),
    ("target=80,bad", "invalid publish opts format (should be name=value but got 'bad')"),
])
def test_publish_errors(spec: str, error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        _body("-p", spec)
    assert str(info.value) == error


def test_expose_and_publish_all() -> None:
    body = _body("-P", "--expose", "80", "--expose", "90-92/udp", "--expose", "80/UDP", "-p", "1000")
    assert body["ExposedPorts"] == {"1000/tcp": {}, "80/UDP": {}, "80/tcp": {}, "90/udp": {}, "91/udp": {},
                                    "92/udp": {}}
    assert body["HostConfig"]["PublishAllPorts"] is True
    plain = _body()
    assert "ExposedPorts" not in plain
    assert plain["HostConfig"]["PortBindings"] == {} and plain["HostConfig"]["PublishAllPorts"] is False
    assert list(body)[:7] == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                              "ExposedPorts"]


@pytest.mark.parametrize(("value", "error"), [
    ("80:90", "invalid port format for --expose: 80:90"),
    ("abc", 'invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax'),
    ("70000", 'invalid range format for --expose: 70000, error: strconv.ParseUint: parsing "70000": value out '
              'of range'),
    ("90-89", "invalid range format for --expose: 90-89, error: invalid range specified for port: 90-89"),
    ("", "invalid range format for --expose: , error: empty string specified for ports"),
])
def test_expose_errors(value: str, error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        _body("--expose", value)
    assert str(info.value) == error


# ---------------------------------------------------------------- --add-host / --dns / --link


def test_extra_hosts_dns_links() -> None:
    hc = _body("--add-host", "a:1.2.3.4", "--add-host", "b=::1", "--add-host", "c:host-gateway",
               "--add-host", "d=host-gateway", "--add-host", "e:::1", "--add-host", "f=[::2]",
               "--add-host", "g:[1.2.3.4]", "--add-host", " h : 1.2.3.4 ",
               "--dns", "8.8.8.8", "--dns", " ::ffff:1.2.3.4", "--dns", "0:0::1",
               "--dns-search", "ex.com.", "--dns-search", ".", "--dns-option", "ndots:2", "--dns-opt", "rotate",
               "--link", "db", "--link", "cache:c", "--link", "/a:/b")["HostConfig"]
    assert hc["ExtraHosts"] == ["a:1.2.3.4", "b:::1", "c:host-gateway", "d:host-gateway", "e:::1", "f:::2",
                                "g:1.2.3.4", " h : 1.2.3.4 "]
    assert hc["Dns"] == ["8.8.8.8", "1.2.3.4", "::1"]
    assert hc["DnsSearch"] == ["ex.com", "."]
    assert hc["DnsOptions"] == ["ndots:2", "rotate"]
    assert hc["Links"] == ["db", "cache:c", "/a:/b"]
    plain = _body()["HostConfig"]
    assert (plain["Dns"], plain["DnsSearch"], plain["DnsOptions"]) == ([], [], [])
    assert "ExtraHosts" not in plain and "Links" not in plain  # null in docker's body


@pytest.mark.parametrize(("flag", "value", "error"), [
    ("--add-host", "foo", 'bad format for add-host: "foo"'),
    ("--add-host", ":1.2.3.4", 'bad format for add-host: ":1.2.3.4"'),
    ("--add-host", "a:b=1.2.3.4", 'bad format for add-host: "a:b=1.2.3.4"'),
    ("--add-host", "a:bad", 'invalid IP address in add-host: "bad"'),
    ("--add-host", "a:", 'invalid IP address in add-host: ""'),
    ("--add-host", "a=", 'invalid IP address in add-host: ""'),
    ("--add-host", "a=b:1.2.3.4", 'invalid IP address in add-host: "b:1.2.3.4"'),
    ("--add-host", "a:01.2.3.4", 'invalid IP address in add-host: "01.2.3.4"'),
    ("--add-host", "a=[::1]:80", 'invalid IP address in add-host: "[::1]:80"'),
    ("--dns", "bad", "IP address is not correctly formatted: bad"),
    ("--dns", "fe80::1%eth0", "IP address is not correctly formatted: fe80::1%eth0"),
    ("--dns", "1.2.3.4/24", "IP address is not correctly formatted: 1.2.3.4/24"),
    ("--dns-search", "", " is not a valid domain"),
    ("--dns-search", "a_b", "a_b is not a valid domain"),
    ("--link", "", "empty string specified for links"),
    ("--link", "bad:a:b", "bad format for links: bad:a:b"),
])
def test_flag_value_errors(flag: str, value: str, error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        _body(f"{flag}={value}")
    assert str(info.value) == f'invalid argument "{value}" for "{flag}" flag: {error}'
    assert getattr(info.value, "exit_code", None) == 125


# ---------------------------------------------------------------- --network and the endpoint flags


def _ep(**fields: Any) -> dict[str, Any]:
    ep: dict[str, Any] = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                          "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "",
                          "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                          "GlobalIPv6PrefixLen": 0, "DNSNames": None}
    ep.update(fields)
    return ep


@pytest.mark.parametrize(("argv", "mode", "endpoints"), [
    ([], "default", {"default": _ep()}),
    (["--network", "mynet"], "mynet", {}),
    (["--net", "none"], "none", {}),
    (["--network", "mynet", "--network-alias", "a1", "--network-alias", "a2", "--ip", "10.1.0.5",
      "--ip6", "fd00::5", "--mac-address", "02:42:ac:11:00:02"], "mynet",
     {"mynet": _ep(IPAMConfig={"IPv4Address": "10.1.0.5", "IPv6Address": "fd00::5"}, Aliases=["a1", "a2"],
                   MacAddress="02:42:ac:11:00:02")}),
    (["--ip", "10.1.0.5"], "default", {"default": _ep(IPAMConfig={"IPv4Address": "10.1.0.5"})}),
    (["--ip6", "bad"], "default", {"default": _ep(IPAMConfig={"IPv6Address": "bad"})}),  # the daemon judges
    (["--mac-address", "0242.ac11.0002"], "default", {"default": _ep(MacAddress="0242.ac11.0002")}),
    (["--network", "host", "--mac-address", "02-42-ac-11-00-02"], "host",
     {"host": _ep(MacAddress="02-42-ac-11-00-02")}),
    (["--network", "container:abc", "--ip", "1.2.3.4"], "container:abc",
     {"container:abc": _ep(IPAMConfig={"IPv4Address": "1.2.3.4"})}),
    (["--link", "db:d"], "default", {"default": _ep()}),  # on the default bridge: a legacy link only
    (["--network", "mynet", "--network-alias", "x", "--link", "db"], "mynet",
     {"mynet": _ep(Links=["db"], Aliases=["x"])}),
    (["--network", "mynet", "--network-alias", "a,b"], "mynet", {"mynet": _ep(Aliases=["a,b"])}),
    (["--network", "b", "--network", "a"], "b", {"a": _ep(), "b": _ep()}),
    (["--network", "name=a,alias=x,ip=10.0.0.3", "--network", "b"], "a",
     {"a": _ep(IPAMConfig={"IPv4Address": "10.0.0.3"}, Aliases=["x"]), "b": _ep()}),
    (["--network", "name=A,driver-opt=K=V,mac-address=02:42:ac:11:00:02,link-local-ip=169.254.1.1,gw-priority=3"],
     "a", {"a": _ep(IPAMConfig={"LinkLocalIPs": ["169.254.1.1"]}, MacAddress="02:42:ac:11:00:02",
                    DriverOpts={"k": "v"}, GwPriority=3)}),
    (["--link-local-ip", "169.254.1.1", "--network", "mynet"], "mynet",
     {"mynet": _ep(IPAMConfig={"LinkLocalIPs": ["169.254.1.1"]})}),
])
def test_networking_config(argv: list[str], mode: str, endpoints: dict[str, Any]) -> None:
    body = _body(*argv)
    assert body["HostConfig"]["NetworkMode"] == mode
    assert body["NetworkingConfig"] == {"EndpointsConfig": endpoints}
    assert "MacAddress" not in body  # API >= 1.44: only on the endpoint


@pytest.mark.parametrize(("argv", "error"), [
    (["--network-alias", "x"], "network-scoped aliases are only supported for user-defined networks"),
    (["--network", "bridge", "--network-alias", "x"], "network-scoped aliases are only supported for "
                                                      "user-defined networks"),
    (["--network", "container:abc", "--network-alias", "x"], "network-scoped aliases are only supported for "
                                                             "user-defined networks"),
    (["--mac-address", "bad"], "bad is not a valid mac address"),
    (["--network", "a", "--network", "a"], 'network "a" is specified multiple times'),
    (["--network", "a", "--network", "host"], "conflicting options: cannot attach both user-defined and "
                                              "non-user-defined network-modes"),
    (["--network", "name=a,alias=x", "--network-alias", "y"], "conflicting options: cannot specify both "
                                                               "--network-alias and per-network alias"),
    (["--network", "name=a,ip=1.2.3.4", "--ip", "1.2.3.5"], "conflicting options: cannot specify both --ip and "
                                                             "per-network IPv4 address"),
    (["--network", "alias=x"], 'invalid argument "alias=x" for "--network" flag: network name/id is not '
                               'specified'),
    (["--network", "name=a,foo=b"], 'invalid argument "name=a,foo=b" for "--network" flag: invalid field key '
                                    'foo'),
    (["--network", "name=a,gw-priority=x"], 'invalid argument "name=a,gw-priority=x" for "--network" flag: '
                                            'invalid gw-priority (x): invalid syntax'),
])
def test_networking_errors(argv: list[str], error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        _body(*argv)
    assert str(info.value) == error


def test_network_flags_keep_interspersed_split() -> None:
    p = argparse.ArgumentParser(add_help=False)
    add_run_flags(p)
    argv = ["-p", "80:80", "--network", "n", "--dns", "1.1.1.1", "-P", "--add-host", "h:1.2.3.4",
            "busybox", "echo", "-p", "--dns"]
    head, rest = split_interspersed(p, argv)
    assert head == argv[:10] and rest == ["echo", "-p", "--dns"]


def test_mac_and_ip_parsers() -> None:
    assert valid_mac("02:42:ac:11:00:02") and valid_mac("02-42-AC-11-00-02") and valid_mac("0242.ac11.0002")
    assert valid_mac("02:42:ac:11:00:02:00:01")
    assert not valid_mac("02:42-ac:11:00:02") and not valid_mac("02:42:ac:11:00") and not valid_mac("bad")
    assert parse_ip("::ffff:1.2.3.4") == "1.2.3.4" and parse_ip("0:0::1") == "::1"
    assert parse_ip("01.2.3.4") is None and parse_ip("fe80::1%eth0") is None and parse_ip("") is None


# ---------------------------------------------------------------- network create / connect bodies


def _net_args(setup: Any, *argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    setup(p)
    return p.parse_args(list(argv))


def test_network_create_body_minimal() -> None:
    a = _net_args(networks.add_create, "foo")
    assert json.dumps(networks.create_network_body(a), separators=(",", ":")) == (
        '{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,'
        '"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},'
        '"Name":"foo"}')


def test_network_create_body_all_flags() -> None:
    a = _net_args(networks.add_create, "-d", "bridge", "--subnet", "10.5.0.0/16", "--gateway", "10.5.0.1",
                  "--ip-range", "10.5.1.0/24", "--aux-address", "a=10.5.0.2", "--ipv6", "--subnet", "fd00::/64",
                  "--internal", "--attachable", "--label", "k=v", "-l", "x",
                  "-o", "com.docker.network.bridge.name=br9", "-o", "flag", "--ipam-driver", "default", "bar")
    assert json.dumps(networks.create_network_body(a), separators=(",", ":")) == (
        '{"Driver":"bridge","Scope":"","EnableIPv6":true,"IPAM":{"Driver":"default","Options":{},"Config":['
        '{"Subnet":"10.5.0.0/16","IPRange":"10.5.1.0/24","Gateway":"10.5.0.1","AuxiliaryAddresses":'
        '{"a":"10.5.0.2"}},{"Subnet":"fd00::/64"}]},"Internal":true,"Attachable":true,"Ingress":false,'
        '"ConfigOnly":false,"ConfigFrom":null,"Options":{"com.docker.network.bridge.name":"br9","flag":""},'
        '"Labels":{"k":"v","x":""},"Name":"bar"}')


def test_network_create_bool_flags_take_go_values_but_no_word() -> None:
    a = _net_args(networks.add_create, "--ipv4=false", "--ipv6", "--internal=false", "--config-only",
                  "--config-from", "base", "--ipam-opt", "a=b", "--scope", "local", "x")
    body = networks.create_network_body(a)
    assert a.name == "x"
    assert (body["EnableIPv4"], body["EnableIPv6"], body["Internal"]) == (False, True, False)
    assert body["ConfigFrom"] == {"Network": "base"} and body["ConfigOnly"] is True
    assert body["IPAM"]["Options"] == {"a": "b"} and body["Scope"] == "local"
    assert list(body)[:4] == ["Driver", "Scope", "EnableIPv4", "EnableIPv6"]


def test_network_create_multiple_subnets_group_by_subnet() -> None:
    a = _net_args(networks.add_create, "--subnet", "10.5.0.0/16,10.6.0.0/16", "--gateway", "10.6.0.1",
                  "--aux-address", "b=10.6.0.9", "--aux-address", "c=10.5.0.3", "q")
    assert networks.create_network_body(a)["IPAM"]["Config"] == [
        {"Subnet": "10.5.0.0/16", "AuxiliaryAddresses": {"c": "10.5.0.3"}},
        {"Subnet": "10.6.0.0/16", "Gateway": "10.6.0.1", "AuxiliaryAddresses": {"b": "10.6.0.9"}}]


@pytest.mark.parametrize(("argv", "error"), [
    (["--gateway", "10.6.0.1"], "every ip-range or gateway must have a corresponding subnet"),
    (["--subnet", "10.5.0.0/16", "--gateway", "10.6.0.1"], "no matching subnet for gateway 10.6.0.1"),
    (["--subnet", "10.5.0.0/16", "--gateway", "10.5.0.1,10.5.0.2"],
     "every ip-range or gateway must have a corresponding subnet"),
    (["--subnet", "10.5.0.0/16", "--subnet", "10.5.1.0/24"],
     "multiple overlapping subnet configuration is not supported"),
    (["--subnet", "10.0.0.0/8,11.0.0.0/8", "--ip-range", "bad"], "invalid CIDR address: bad"),
    (["--subnet", "10.0.0.0/8", "--ip-range", "12.0.0.0/24"], "no matching subnet for range 12.0.0.0/24"),
    (["--subnet", "10.0.0.0/8", "--subnet", "bad"], "invalid subnet: invalid CIDR address: bad"),
    (["--subnet", "10.0.0.0/8", "--aux-address", "a=12.0.0.1"], "no matching subnet for aux-address 12.0.0.1"),
    (["--subnet", "10.0.0.0/8", "--subnet", "11.0.0.0/8", "--ip-range", "10.1.0.0/16", "--ip-range",
      "10.2.0.0/16"], "cannot configure multiple ranges (10.2.0.0/16, 10.1.0.0/16) on the same subnet "
                      "(10.0.0.0/8)"),
    (["--subnet", "10.0.0.0/8", "--subnet", "11.0.0.0/8", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2"],
     "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/8)"),
    (["--label", "=v"], "invalid argument \"=v\" for \"--label\" flag: invalid label '=v': empty name"),
    (["--label", " a b=v"], "invalid argument \" a b=v\" for \"--label\" flag: label 'a b' contains whitespaces"),
])
def test_network_create_errors(argv: list[str], error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        networks.create_network_body(_net_args(networks.add_create, *argv, "q"))
    assert str(info.value) == error


def test_network_create_single_subnet_is_left_to_the_daemon() -> None:
    a = _net_args(networks.add_create, "--subnet", "bad", "q")
    assert networks.create_network_body(a)["IPAM"]["Config"] == [{"Subnet": "bad"}]


def test_connect_body_like_docker() -> None:
    tail = ('"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,'
            '"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}')
    plain = networks.connect_body(_net_args(networks.add_connect, "n1", "web"))
    assert json.dumps(plain, separators=(",", ":")) == (
        '{"Container":"web","EndpointConfig":{"IPAMConfig":{},"Links":null,"Aliases":[],"MacAddress":"",'
        '"DriverOpts":{},' + tail)
    full = networks.connect_body(_net_args(
        networks.add_connect, "--alias", "x", "--alias", "y", "--ip", "10.0.0.5", "--ip6", "fd00::5",
        "--link", "db:d", "--link", "cache", "--driver-opt", "k=v", "--driver-opt", "a=b", "n1", "web"))
    assert json.dumps(full, separators=(",", ":")) == (
        '{"Container":"web","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.0.0.5","IPv6Address":"fd00::5"},'
        '"Links":["db:d","cache"],"Aliases":["x","y"],"MacAddress":"","DriverOpts":{"a":"b","k":"v"},' + tail)
    assert networks.connect_body(_net_args(networks.add_connect, "--alias", "x,y", "n", "c"))[
        "EndpointConfig"]["Aliases"] == ["x", "y"]
    with pytest.raises(InvalidArgument, match="invalid key/value pair format in driver options"):
        networks.connect_body(_net_args(networks.add_connect, "--driver-opt", "novalue", "n", "c"))


# ---------------------------------------------------------------- output: network ls, port


_NETS = [
    {"Name": "host", "Id": "aa86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed99",
     "Created": "2024-01-02T10:00:00.123456789Z", "Scope": "local", "Driver": "host", "Labels": {}},
    {"Name": "bridge", "Id": "7d86d31b1478e7cca9ebed7e73aa0fdeec46c5ca29497431d3007d2d9e15ed99",
     "Created": "2024-01-03T10:00:00.5Z", "Scope": "local", "Driver": "bridge", "EnableIPv6": True,
     "Internal": True, "Labels": {"b": "2", "a": "1"}},
    {"Name": "a-very-long-network-name-here", "Id": "01234567890abcdef", "Created": "2024-01-03T10:00:00Z",
     "Scope": "local", "Driver": "null", "Labels": None},
]


def test_network_ls_table_like_docker() -> None:
    assert networks.render_networks(_NETS, None, False, True) == (
        "NETWORK ID     NAME                            DRIVER    SCOPE\n"
        "01234567890a   a-very-long-network-name-here   null      local\n"
        "7d86d31b1478   bridge                          bridge    local\n"
        "aa86d31b1478   host                            host      local\n")
    assert networks.render_networks(_NETS, None, True, True) == "01234567890a\n7d86d31b1478\naa86d31b1478\n"
    assert networks.render_networks(_NETS, "table", True, False).splitlines()[1] == _NETS[1]["Id"]
    assert networks.render_networks([], None, False, True) == "NETWORK ID   NAME      DRIVER    SCOPE\n"


def test_network_ls_formats() -> None:
    out = networks.render_networks(_NETS, '{{.ID}} {{.IPv6}} {{.Internal}} {{.Labels}} {{.Label "a"}} '
                                   '{{.CreatedAt}}', False, True)
    assert out.splitlines() == [
        "01234567890a false false   2024-01-03 10:00:00 +0000 UTC",
        "7d86d31b1478 true true a=1,b=2 1 2024-01-03 10:00:00.5 +0000 UTC",
        "aa86d31b1478 false false   2024-01-02 10:00:00.123456789 +0000 UTC"]
    assert networks.render_networks(_NETS[:1], "json", False, True) == (
        '{"CreatedAt":"2024-01-02 10:00:00.123456789 +0000 UTC","Driver":"host","ID":"aa86d31b1478",'
        '"IPv4":"false","IPv6":"false","Internal":"false","Labels":"","Name":"host","Scope":"local"}\n')
    assert networks.render_networks(_NETS[:1], "raw", False, True) == (
        "network_id: aa86d31b1478\nname: host\ndriver: host\nscope: local\n\n")
    assert networks.render_networks(_NETS[:1], "{{.Name}}", True, True) == "host\n"  # a format beats -q
    assert networks.go_time_string("2024-01-02T10:00:00+01:00") == "2024-01-02 10:00:00 +0100 +0100"


def test_natural_order() -> None:
    names = ["net10", "net2", "Net1", "net02", "net", "a-b", "a1"]
    assert natural_sorted(names) == ["Net1", "a1", "a-b", "net", "net2", "net02", "net10"]


_PORTS = {"80/tcp": [_b("0.0.0.0", "18080"), _b("::", "18080")], "443/tcp": None,
          "53/udp": [_b("127.0.0.1", "5353")], "8000/tcp": [_b("::1", "9000")], "9/tcp": [_b("", "9999")],
          "1000/sctp": [_b("0.0.0.0", "1000")], "53/tcp": [_b("0.0.0.0", "53")]}


def test_port_lines_like_docker() -> None:
    assert networks.port_lines(_PORTS, "web") == [
        "9/tcp -> :9999", "53/tcp -> 0.0.0.0:53", "53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:18080",
        "80/tcp -> [::]:18080", "1000/sctp -> 0.0.0.0:1000", "8000/tcp -> [::1]:9000"]
    assert networks.port_lines(_PORTS, "web", "80") == ["0.0.0.0:18080", "[::]:18080"]
    assert networks.port_lines(_PORTS, "web", "80/") == ["0.0.0.0:18080", "[::]:18080"]
    assert networks.port_lines(_PORTS, "web", "53/udp") == ["127.0.0.1:5353"]
    assert networks.port_lines({}, "web") == [] and networks.port_lines(None, "web") == []


@pytest.mark.parametrize(("port", "error"), [
    ("443", "No public port '443' published for web"),
    ("81/tcp", "No public port '81/tcp' published for web"),
    ("80/xyz", "No public port '80/xyz' published for web"),
    ("abc", 'invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax'),
    ("8000-8001", 'invalid port (8000-8001): strconv.ParseUint: parsing "8000-8001": invalid syntax'),
])
def test_port_errors(port: str, error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        networks.port_lines(_PORTS, "web", port)
    assert str(info.value) == error


# ---------------------------------------------------------------- commands against a fake daemon


class _Handler(JSONHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.calls.append((self.command, self.path, body))  # type: ignore[attr-defined]
        path = self.path.split("?")[0].removeprefix("/v1.45")
        if path == "/networks/create":
            self.send_json(201, {"Id": "f" * 64, "Warning": ""})
        elif path == "/networks" and self.command == "GET":
            self.send_json(200, _NETS)
        elif path == "/networks/prune":
            self.send_json(200, {"NetworksDeleted": ["n1", "n2"]})
        elif path in ("/networks/bad", "/networks/bad/connect"):
            self.send_json(404, {"message": "network bad not found"})
        elif path == "/networks/inuse":
            self.send_json(403, {"message": "error while removing network: network inuse has active endpoints"})
        elif path.startswith("/networks/"):
            self.send_response(204 if self.command == "DELETE" else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/containers/web/json":
            self.send_json(200, {"Id": "c" * 64, "Name": "/web", "NetworkSettings": {"Ports": _PORTS}})
        else:
            self.send_json(404, {"message": "No such container: nope"})

    do_GET = do_POST = do_DELETE = _reply


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, UnixServer]]:
    sock = tmp_path / "d.sock"
    with serve(sock, _Handler, calls=[]) as srv:
        yield f"unix://{sock}", srv


def test_network_commands(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str]) -> None:
    host, srv = daemon
    calls: list[tuple[str, str, bytes]] = srv.calls  # type: ignore[attr-defined]
    assert main(["-H", host, "network", "create", "--ipv6", "n1"]) == 0
    assert capfd.readouterr().out == "f" * 64 + "\n"
    assert json.loads(calls[-1][2])["EnableIPv6"] is True and json.loads(calls[-1][2])["Name"] == "n1"

    assert main(["-H", host, "network", "ls", "-q", "-f", "driver=bridge"]) == 0
    assert capfd.readouterr().out == "01234567890a\n7d86d31b1478\naa86d31b1478\n"
    assert "filters=" in calls[-1][1] and "bridge" in calls[-1][1]

    assert main(["-H", host, "network", "rm", "a", "bad", "inuse", "b"]) == 1
    out = capfd.readouterr()
    assert out.out == "a\nb\n"
    assert out.err == ("Error response from daemon: network bad not found\n"
                       "Error response from daemon: error while removing network: network inuse has active "
                       "endpoints\n")
    assert main(["-H", host, "network", "remove", "-f", "a", "bad"]) == 0
    assert capfd.readouterr().out == "a\n"

    assert main(["-H", host, "network", "connect", "--alias", "w", "n1", "web"]) == 0
    assert calls[-1][1] == "/v1.45/networks/n1/connect"
    assert json.loads(calls[-1][2])["EndpointConfig"]["Aliases"] == ["w"]
    assert main(["-H", host, "network", "connect", "bad", "web"]) == 1
    assert capfd.readouterr().err == "Error response from daemon: network bad not found\n"
    assert main(["-H", host, "network", "disconnect", "-f", "n1", "web"]) == 0
    assert json.loads(calls[-1][2]) == {"Container": "web", "Force": True}

    assert main(["-H", host, "network", "prune", "-f"]) == 0
    assert capfd.readouterr().out == "Deleted Networks:\nn1\nn2\n\n"


def test_network_errors_exit_codes(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str]) -> None:
    host, srv = daemon
    assert main(["-H", host, "network", "create", "--gateway", "10.0.0.1", "n"]) == 1
    assert capfd.readouterr().err == "Error: every ip-range or gateway must have a corresponding subnet\n"
    assert main(["-H", host, "network", "create", "--label", "=v", "n"]) == 125  # a flag error, as docker
    assert main(["-H", host, "run", "-p", "abc:80", "busybox"]) == 125
    assert capfd.readouterr().err.endswith("Error: invalid hostPort: abc\n")
    assert srv.calls == []  # type: ignore[attr-defined]


def test_network_prune_asks(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    host, srv = daemon
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["-H", host, "network", "prune"]) == 0
    assert capfd.readouterr().out == ("WARNING! This will remove all custom networks not used by at least one "
                                      "container.\nAre you sure you want to continue? [y/N] ")
    assert srv.calls == []  # type: ignore[attr-defined]


def test_port_command(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str]) -> None:
    host, _ = daemon
    assert main(["-H", host, "port", "web", "80/tcp"]) == 0
    assert capfd.readouterr().out == "0.0.0.0:18080\n[::]:18080\n"
    assert main(["-H", host, "container", "port", "web"]) == 0
    assert capfd.readouterr().out.splitlines()[0] == "9/tcp -> :9999"
    assert main(["-H", host, "port", "web", "81"]) == 1
    assert capfd.readouterr().err == "Error: No public port '81' published for web\n"
    assert main(["-H", host, "port", "nope"]) == 1
    assert capfd.readouterr().err == "Error response from daemon: No such container: nope\n"
