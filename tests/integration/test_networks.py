"""Networks end to end through a live daemon and the stock docker CLI: real bridges, veth pairs,
nftables rules and traffic, only between containers and the host's loopback."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, free_port, restart_daemon, start_daemon, stop_daemon, unique

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def nft_table(d: LiveDaemon) -> str:
    table = next(a for a in d.proc.args if str(a).startswith("dytest_"))  # type: ignore[union-attr]
    res = subprocess.run(["nft", "list", "table", "inet", str(table)], capture_output=True, text=True)
    return res.stdout


@pytest.fixture
def net(daemon: LiveDaemon) -> Iterator[str]:
    name = unique("net")
    daemon.docker("network", "create", name)
    try:
        yield name
    finally:
        ids = daemon.docker("ps", "-aq", "--filter", f"network={name}", check=False).stdout.split()
        if ids:
            daemon.docker("rm", "-f", *[i.decode() for i in ids], check=False)
        daemon.docker("network", "rm", name, check=False)


def serve(d: LiveDaemon, network: str, name: str, *extra: str) -> str:
    return d.docker("run", "-d", "--name", name, "--network", network, *extra, "busybox",
                    "sh", "-c", HTTPD).stdout.decode().strip()


def fetch(d: LiveDaemon, network: str, host: str, timeout: int = 3, *extra: str) -> subprocess.CompletedProcess[bytes]:
    """GET / from busybox httpd on ``host`` with nc (Debian's static busybox wget crashes)."""
    res = d.docker("run", "--rm", "--network", network, *extra, "busybox", "sh", "-c",
                   f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {timeout} {host} 80", check=False)
    if res.returncode == 0 and b"200 OK" not in res.stdout:
        res.returncode = 1
    return res


def body(res: subprocess.CompletedProcess[bytes]) -> str:
    return res.stdout.decode().split("\r\n\r\n", 1)[-1].strip()


def test_containers_reach_each_other_by_name_alias_and_id(daemon: LiveDaemon, net: str) -> None:
    srv = unique("srv")
    cid = serve(daemon, net, srv, "--network-alias", "web")
    for host in (srv, "web", cid[:12], f"{srv}.{net}"):
        res = fetch(daemon, net, host)
        assert res.returncode == 0, (host, res.stderr)
        assert body(res) == f"hello-{cid[:12]}"
    # unknown names are NXDOMAIN from the embedded server, not a hang
    res = fetch(daemon, net, "no-such-container-xyz")
    assert res.returncode != 0
    renamed = unique("ren")
    daemon.docker("rename", srv, renamed)
    assert fetch(daemon, net, renamed).returncode == 0
    assert fetch(daemon, net, srv, 2).returncode != 0


def test_inspect_shows_address_on_the_network(daemon: LiveDaemon, net: str) -> None:
    srv = unique("srv")
    serve(daemon, net, srv)
    info = json.loads(daemon.docker("inspect", srv).stdout)[0]
    ep = info["NetworkSettings"]["Networks"][net]
    subnet = json.loads(daemon.docker("network", "inspect", net).stdout)[0]["IPAM"]["Config"][0]
    import ipaddress
    assert ipaddress.ip_address(ep["IPAddress"]) in ipaddress.ip_network(subnet["Subnet"])
    assert ep["Gateway"] == subnet["Gateway"] and ep["MacAddress"].startswith("02:42:")
    inside = daemon.docker("exec", srv, "ip", "-o", "-4", "addr", "show", "eth0").stdout.decode()
    assert f"{ep['IPAddress']}/{ep['IPPrefixLen']}" in inside
    netinfo = json.loads(daemon.docker("network", "inspect", net).stdout)[0]
    assert info["Id"] in netinfo["Containers"]
    listed = daemon.docker("ps", "-q", "--no-trunc", "--filter", f"network={net}").stdout.decode().split()
    assert listed == [info["Id"]]
    assert daemon.docker("ps", "-q", "--filter", "network=no-such-net").stdout == b""


def test_different_networks_cannot_talk(daemon: LiveDaemon, net: str) -> None:
    other = unique("net")
    daemon.docker("network", "create", other)
    try:
        srv = unique("srv")
        serve(daemon, net, srv)
        ip = json.loads(daemon.docker("inspect", srv).stdout)[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        assert fetch(daemon, net, ip).returncode == 0
        res = fetch(daemon, other, ip, 2)
        assert res.returncode != 0
        assert fetch(daemon, other, srv, 2).returncode != 0  # no name either
    finally:
        daemon.docker("network", "rm", other, check=False)


def test_published_port_is_served_on_host_loopback(daemon: LiveDaemon) -> None:
    port = free_port()
    name = unique("pub")
    cid = daemon.docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "busybox",
                        "sh", "-c", HTTPD).stdout.decode().strip()
    try:
        body = _get_retry(f"http://127.0.0.1:{port}/")   # the httpd may still be starting
        assert body.strip() == f"hello-{cid[:12]}"
        assert daemon.docker("port", name).stdout.decode().strip() == f"80/tcp -> 127.0.0.1:{port}"
        # a second container cannot take the same host port; nothing of it is left behind
        before = host_links()
        res = daemon.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "60", check=False)
        assert res.returncode != 0 and b"port is already allocated" in res.stderr
        assert host_links() == before
    finally:
        daemon.docker("rm", "-f", name, check=False)
    assert f"{port}" not in nft_table(daemon)


def test_published_port_range_and_random_port(daemon: LiveDaemon) -> None:
    base = free_port()
    name = unique("rng")
    script = "for p in 7001 7002; do (while true; do echo port-$p | nc -l -p $p; done) & done; wait"
    daemon.docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{base}-{base + 1}:7001-7002",
                  "-p", "127.0.0.1::7001", "busybox", "sh", "-c", script)
    try:
        ports = json.loads(daemon.docker("inspect", name).stdout)[0]["NetworkSettings"]["Ports"]
        random_port = int(next(b["HostPort"] for b in ports["7001/tcp"] if b["HostPort"] != str(base)))
        for host_port, want in ((base, "port-7001"), (base + 1, "port-7002"), (random_port, "port-7001")):
            assert _recv(host_port).strip() == want
        # the range is one rule, not one per port
        assert nft_table(daemon).count("7001") <= 2
    finally:
        daemon.docker("rm", "-f", name, check=False)


def test_none_host_and_container_modes(daemon: LiveDaemon, net: str) -> None:
    out = daemon.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout.decode()
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    out = daemon.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout.decode()
    assert {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()} >= {"lo", "eth0"}
    srv = unique("srv")
    serve(daemon, net, srv)
    ip = json.loads(daemon.docker("inspect", srv).stdout)[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
    out = daemon.docker("run", "--rm", "--network", f"container:{srv}", "busybox",
                        "ip", "-o", "-4", "addr").stdout.decode()
    assert ip in out


def test_internal_network_has_no_default_route(daemon: LiveDaemon) -> None:
    name = unique("int")
    daemon.docker("network", "create", "--internal", name)
    try:
        out = daemon.docker("run", "--rm", "--network", name, "busybox", "ip", "route").stdout.decode()
        assert "default" not in out and "dev eth0" in out
        assert json.loads(daemon.docker("network", "inspect", name).stdout)[0]["Internal"] is True
    finally:
        daemon.docker("network", "rm", name, check=False)


def test_ipv6_addresses_are_assigned_and_reachable(daemon: LiveDaemon) -> None:
    name = unique("v6")
    daemon.docker("network", "create", "--ipv6", "--subnet", "fd42:dead:beef::/64", name)
    try:
        a = unique("a")
        daemon.docker("run", "-d", "--name", a, "--network", name, "busybox", "sleep", "120")
        info = json.loads(daemon.docker("inspect", a).stdout)[0]["NetworkSettings"]["Networks"][name]
        assert info["GlobalIPv6Address"].startswith("fd42:dead:beef::")
        res = daemon.docker("run", "--rm", "--network", name, "busybox", "ping6", "-c", "1", "-W", "3",
                            info["GlobalIPv6Address"], check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        links = daemon.docker("exec", a, "ip", "-o", "-6", "addr").stdout.decode()
        assert "fe80::" in links  # link-local as well as the global address
    finally:
        ids = daemon.docker("ps", "-aq", "--filter", f"network={name}", check=False).stdout.split()
        if ids:
            daemon.docker("rm", "-f", *[i.decode() for i in ids], check=False)
        daemon.docker("network", "rm", name, check=False)


def test_static_ip_and_connect_disconnect(daemon: LiveDaemon) -> None:
    name = unique("st")
    daemon.docker("network", "create", "--subnet", "10.213.7.0/24", name)
    other = unique("st")
    daemon.docker("network", "create", other)
    try:
        a = unique("a")
        daemon.docker("run", "-d", "--name", a, "--network", name, "--ip", "10.213.7.50", "busybox",
                      "sleep", "120")
        out = daemon.docker("exec", a, "ip", "-o", "-4", "addr").stdout.decode()
        assert "10.213.7.50/24" in out
        res = daemon.docker("run", "--rm", "--network", name, "--ip", "10.213.7.50", "busybox", "true",
                            check=False)
        assert res.returncode != 0 and b"10.213.7.50" in res.stderr
        daemon.docker("network", "connect", "--alias", "second", other, a)
        out = daemon.docker("exec", a, "ip", "-o", "link").stdout.decode()
        assert "eth1" in out
        res = daemon.docker("run", "--rm", "--network", other, "busybox", "ping", "-c", "1", "-W", "3", "second",
                            check=False)
        assert res.returncode == 0, res.stderr
        res = daemon.docker("network", "rm", other, check=False)
        assert res.returncode != 0 and b"active endpoints" in res.stderr
        daemon.docker("network", "disconnect", other, a)
        assert "eth1" not in daemon.docker("exec", a, "ip", "-o", "link").stdout.decode()
    finally:
        daemon.docker("rm", "-f", a, check=False)
        daemon.docker("network", "rm", name, other, check=False)


def test_nothing_left_behind(daemon: LiveDaemon) -> None:
    before_links = host_links()
    name = unique("gone")
    nid = daemon.docker("network", "create", name).stdout.decode().strip()
    bridge = f"dy-{nid[:12]}"
    assert bridge in host_links() and bridge in nft_table(daemon)
    c = unique("c")
    daemon.docker("run", "-d", "--name", c, "--network", name, "-p", "127.0.0.1::80", "busybox",
                  "sleep", "120")
    cid = json.loads(daemon.docker("inspect", c).stdout)[0]["Id"]
    assert cid[:12] in nft_table(daemon)
    daemon.docker("kill", c)  # a crash: the engine cleans up on exit
    daemon.docker("wait", c, check=False)
    assert cid[:12] not in nft_table(daemon)
    assert host_links() - before_links == {bridge}
    assert _allocations(daemon, nid) == []  # the address went back with the stop
    daemon.docker("rm", c)
    daemon.docker("network", "rm", name)
    assert host_links() == before_links
    assert bridge not in nft_table(daemon)
    with sqlite3.connect(daemon.data_root / "metadata.db") as db:
        assert db.execute("SELECT count(*) FROM ipam_subnets WHERE network LIKE ?", (nid + "%",)).fetchone() == (0,)


def _allocations(d: LiveDaemon, network_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(d.data_root / "metadata.db") as db:
        return db.execute("SELECT address, owner FROM ipam_addresses WHERE network LIKE ?",
                          (network_id + "%",)).fetchall()


def test_publish_all_exposed_ports(daemon: LiveDaemon) -> None:
    name = unique("pall")
    daemon.docker("run", "-d", "--name", name, "--expose", "80", "-P", "busybox", "sh", "-c", HTTPD)
    try:
        out = daemon.docker("port", name, "80").stdout.decode().split()
        port = int(out[0].rsplit(":", 1)[1])
        assert _get_retry(f"http://127.0.0.1:{port}/").startswith("hello-")
    finally:
        daemon.docker("rm", "-f", name, check=False)


def test_dns_options_and_extra_hosts(daemon: LiveDaemon, net: str) -> None:
    out = daemon.docker("run", "--rm", "--network", net, "--dns-search", "example.test",
                        "--add-host", "gw:host-gateway", "--add-host", "db:10.1.2.3", "busybox",
                        "sh", "-c", "cat /etc/resolv.conf /etc/hosts").stdout.decode()
    assert "nameserver 127.0.0.11" in out and "search example.test" in out
    assert "10.1.2.3\tdb" in out
    gw = json.loads(daemon.docker("network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert f"{gw}\tgw" in out
    out = daemon.docker("run", "--rm", "--dns", "10.9.9.9", "busybox", "cat", "/etc/resolv.conf").stdout.decode()
    assert "nameserver 10.9.9.9" in out and "127.0.0.11" not in out


def test_links_on_default_bridge(daemon: LiveDaemon) -> None:
    db = unique("db")
    daemon.docker("run", "-d", "--name", db, "busybox", "sh", "-c", HTTPD)
    try:
        res = fetch(daemon, "bridge", "store", 3, "--link", f"{db}:store")
        assert res.returncode == 0, res.stderr
        # no embedded DNS on the default bridge (Docker's behaviour): names do not resolve
        assert fetch(daemon, "bridge", db, 2).returncode != 0
    finally:
        daemon.docker("rm", "-f", db, check=False)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # loopback only
        return resp.read().decode()


def _recv(port: int) -> str:
    """What a container's nc sends on a published port (retried while its listener comes up)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.settimeout(5)
                data = b""
                while chunk := s.recv(1024):
                    data += chunk
            if data or time.monotonic() > deadline:
                return data.decode()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_networking_survives_a_daemon_kill_and_is_gone_after_stop(tmp_path: Path) -> None:
    d = start_daemon(tmp_path)
    bridge = next(str(a) for a in d.proc.args if str(a).startswith("dyb"))  # type: ignore[union-attr]
    try:
        d.cli("bootstrap", "busybox", timeout=120)
        name, port = unique("net"), free_port()
        d.docker("network", "create", name)
        cid = d.docker("run", "-d", "--name", "srv", "--network", name, "-p", f"127.0.0.1:{port}:80",
                       "busybox", "sh", "-c", HTTPD).stdout.decode().strip()
        assert _get_retry(f"http://127.0.0.1:{port}/").strip() == f"hello-{cid[:12]}"
        d = restart_daemon(d, kill=True)
        # the container kept running; its port, its name and its addresses are still served
        assert _get(f"http://127.0.0.1:{port}/").strip() == f"hello-{cid[:12]}"
        res = fetch(d, name, "srv")
        assert res.returncode == 0 and body(res) == f"hello-{cid[:12]}", res.stderr
        other = d.docker("run", "-d", "--network", name, "busybox", "sleep", "60").stdout.decode().strip()
        ips = {json.loads(d.docker("inspect", c).stdout)[0]["NetworkSettings"]["Networks"][name]["IPAddress"]
               for c in (cid, other)}
        assert len(ips) == 2  # no address handed out twice after the restart
        res = d.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "true", check=False)
        assert b"port is already allocated" in res.stderr  # the port is held again
        d.docker("rm", "-f", "srv", other)
        d.docker("network", "rm", name)
        d.docker("container", "prune", "-f")
    finally:
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(30)
        stop_daemon(d)
    # a daemon stopped with no container running leaves no bridge and no table
    assert bridge not in host_links()
    assert subprocess.run(["nft", "list", "table", "inet", f"dytest_{bridge[3:]}"],
                          capture_output=True).returncode != 0


def _get_retry(url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            return _get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_bridge_option_refuses_a_device_that_is_not_a_bridge(daemon: LiveDaemon) -> None:
    name = unique("lo")
    res = daemon.docker("network", "create", "-o", "com.docker.network.bridge.name=lo", name, check=False)
    assert res.returncode != 0 and b"device lo exists and is not a bridge" in res.stderr
    assert name not in daemon.docker("network", "ls", "--format", "{{.Name}}").stdout.decode().split()
    assert "lo" in host_links()
