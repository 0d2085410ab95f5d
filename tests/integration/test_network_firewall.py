"""network/firewall against real nftables: the ruleset text after each change, idempotency, atomic
failure, and real traffic through namespaces, bridges and veths the tests make (and always remove).

Every test uses its own table (``dytest<pid>``), bridges ``dy{t,u}<pid%10000>`` and namespaces
``dyfw-<pid>-*``; traffic goes only to loopback, to addresses the test created and to its namespaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import select
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.network import firewall as fwmod
from dockyard.network.firewall import Firewall, NetworkRules, PortMapping
from dockyard.network.ipam import host_routes

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (nftables)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs ip (iproute2)"),
]

PID = os.getpid()
TAG = PID % 10000
TABLE = f"dytest{PID}"
BR1, BR2 = f"dyt{TAG}", f"dyu{TAG}"

SERVER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p)))
    s.listen(16)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        c, peer = key.fileobj.accept()
        c.sendall(f"{key.fileobj.getsockname()[1]} {peer[0]}\n".encode())
        c.close()
"""

CLIENT = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as s:
        print(s.makefile().readline().strip())
except OSError as e:
    print("FAIL", type(e).__name__)
"""


def listing(table: str = TABLE) -> str:
    res = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True)
    return res.stdout if res.returncode == 0 else ""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def fw() -> Iterator[Firewall]:
    f = Firewall(TABLE)
    try:
        yield f
    finally:
        f.destroy()
        assert listing() == ""


def free_base() -> str:
    """A 10.R.0.0/16 with nothing of it routed on the host: the tests use 10.R.{1,2,3}.0/24."""
    routes = host_routes()
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{random.randrange(100, 250)}.0.0/16")
        if not any(net.overlaps(r) for r in routes):
            return str(net.network_address).rsplit(".", 2)[0]
    pytest.skip("no free 10.x.0.0/16 on this host")


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive TCP ports nothing listens on at 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(20000, 60000)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip("no free port range on loopback")


class Topo:
    """Bridges, veths, namespaces, servers and sysctls of one test; ``close`` removes them all."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.sysctls: dict[str, str] = {}
        self.procs: list[subprocess.Popen[str]] = []

    def sysctl(self, key: str, value: str) -> None:
        path = Path("/proc/sys") / key.replace(".", "/")
        self.sysctls.setdefault(str(path), path.read_text().strip())
        path.write_text(value)

    def bridge(self, name: str, addr: str) -> None:
        sh("ip", "link", "add", name, "type", "bridge")
        self.links.append(name)
        sh("ip", "addr", "add", addr, "dev", name)
        sh("ip", "link", "set", name, "up")

    def netns(self, name: str, host_if: str, addr: str, gateway: str, bridge: str | None = None,
              host_addr: str | None = None) -> None:
        """A namespace whose eth0 is a veth to ``bridge`` (or a plain routed veth with ``host_addr``)."""
        ns = f"dyfw-{PID}-{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.links.append(host_if)
        if bridge:
            sh("ip", "link", "set", host_if, "master", bridge)
        if host_addr:
            sh("ip", "addr", "add", host_addr, "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        for cmd in (["link", "set", "lo", "up"], ["addr", "add", addr, "dev", "eth0"],
                    ["link", "set", "eth0", "up"], ["route", "add", "default", "via", gateway]):
            sh("ip", "-n", ns, *cmd)

    def server(self, name: str, *ports: int) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", f"dyfw-{PID}-{name}", sys.executable, "-c", SERVER,
                                 *map(str, ports)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready and proc.stdout.readline().strip() == "ready", proc.stderr

    def connect(self, name: str, ip: str, port: int, timeout: float = 1.0) -> str:
        """What the server at ip:port answers a client in namespace ``name`` ("FAIL ..." if nothing)."""
        res = subprocess.run(["ip", "netns", "exec", f"dyfw-{PID}-{name}", sys.executable, "-c", CLIENT,
                              ip, str(port), str(timeout)], capture_output=True, text=True, timeout=30)
        return res.stdout.strip()

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for path, value in self.sysctls.items():
            with contextlib.suppress(OSError):
                Path(path).write_text(value)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in self.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)


@pytest.fixture
def topo() -> Iterator[Topo]:
    t = Topo()
    try:
        yield t
    finally:
        t.close()


def host_connect(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.makefile().readline().strip()
    except OSError as exc:
        return f"FAIL {type(exc).__name__}"


# -- ruleset text ---------------------------------------------------------------------------------
def test_ensure_is_idempotent_and_keeps_rules(fw: Firewall) -> None:
    assert fw.owners() == set() and fw.bridges() == set()
    fw.ensure()
    first = listing()
    fw.ensure()
    assert listing() == first
    for text in ("type filter hook forward priority filter; policy accept;", "iifname vmap @fwd-jumps",
                 "type nat hook prerouting priority dstnat;", "type nat hook output priority -100;",
                 "fib daddr type local jump portmaps", "oifname vmap @nat-jumps"):
        assert text in first
    fw.add_network(NetworkRules(BR1, ("10.99.1.0/24",)))
    fw.add_ports("c1", [PortMapping("tcp", "", 8080, "10.99.1.2", 80, bridge=BR1)])
    before = listing()
    fw.ensure()
    assert listing() == before


def test_network_rules(fw: Firewall) -> None:
    fw.add_network(NetworkRules(BR1, ("10.99.1.0/24", "fd00:99::/64")))
    text = listing()
    for rule in (f'iifname "{BR1}" oifname != "{BR1}" ip saddr 10.99.1.0/24 masquerade',
                 f'iifname "{BR1}" oifname != "{BR1}" ip6 saddr fd00:99::/64 masquerade',
                 f'oifname "{BR1}" ip saddr 127.0.0.0/8 masquerade',
                 f'iifname "{BR1}" oifname != "{BR1}" oifname @bridges drop',
                 f'oifname "{BR1}" ct state established,related accept',
                 f'oifname "{BR1}" ct status dnat accept',
                 f'"{BR1}" : jump fwd/{BR1}', f'"{BR1}" : jump nat/{BR1}'):
        assert rule in text
    assert f'iifname "{BR1}" oifname "{BR1}" drop' not in text
    fw.add_network(NetworkRules(BR1, ("10.99.1.0/24", "fd00:99::/64")))
    assert listing() == text
    assert fw.bridges() == {BR1}

    # replaced, not added to
    fw.add_network(NetworkRules(BR1, ("10.99.2.0/24",), icc=False, internal=True))
    text = listing()
    assert "masquerade" in text and "saddr 10.99" not in text and "fd00:99::" not in text
    for rule in (f'iifname "{BR1}" oifname != "{BR1}" drop', f'oifname "{BR1}" iifname != "{BR1}" drop',
                 f'iifname "{BR1}" oifname "{BR1}" ct status dnat accept',
                 f'iifname "{BR1}" oifname "{BR1}" drop'):
        assert rule in text
    fw.add_network(NetworkRules(BR2, ("10.99.3.0/24",), masquerade=False))
    assert "saddr 10.99.3.0/24" not in listing()
    assert fw.bridges() == {BR1, BR2}

    fw.remove_network(BR1)
    fw.remove_network(BR1)
    text = listing()
    assert BR1 not in text and f"nat/{BR2}" in text
    assert fw.bridges() == {BR2}


def test_port_rules(fw: Firewall) -> None:
    maps = [PortMapping("tcp", "", 8080, "10.99.1.2", 80, bridge=BR1),
            PortMapping("tcp", "127.0.0.1", 8000, "10.99.1.2", 9000, count=3, bridge=BR1),
            PortMapping("udp", "0.0.0.0", 7000, "10.99.1.2", 7000, count=2, bridge=BR1),
            PortMapping("sctp", "::", 5000, "fd00:99::2", 5001, bridge=BR1),
            PortMapping("tcp", "::1", 6000, "fd00:99::2", 6000, count=2, bridge=BR1)]
    fw.add_ports("c1", maps)
    text = listing()
    for rule in ("meta nfproto ipv4 tcp dport 8080 dnat ip to 10.99.1.2:80",
                 "ip daddr 127.0.0.1 tcp dport 8000-8002 dnat ip to 10.99.1.2:tcp dport map "
                 "{ 8000 : 9000, 8001 : 9001, 8002 : 9002 }",
                 "meta nfproto ipv4 udp dport 7000-7001 dnat ip to 10.99.1.2\n",
                 "meta nfproto ipv6 sctp dport 5000 dnat ip6 to [fd00:99::2]:5001",
                 "ip6 daddr ::1 tcp dport 6000-6001 dnat ip6 to fd00:99::2\n",
                 f"jump ports/c1/{BR1}"):
        assert rule in text
    assert text.count(" dnat ") == 5  # one rule per mapping, ranges included
    fw.add_ports("c1", maps)
    assert listing() == text
    fw.add_ports("c2", [PortMapping("udp", "", 53, "10.99.2.2", 53, bridge=BR2)])
    assert fw.owners() == {"c1", "c2"}

    # replacing: the old mappings go, also those towards another bridge
    fw.add_ports("c1", [PortMapping("tcp", "", 8081, "10.99.2.3", 81, bridge=BR2)])
    text = listing()
    assert "8080" not in text and "8081" in text and f"ports/c1/{BR1}" not in text

    fw.remove_ports("c1")
    fw.remove_ports("c1")
    text = listing()
    assert "ports/c1/" not in text and "8081" not in text and "ports/c2/" in text
    assert fw.owners() == {"c2"}


def test_remove_network_removes_its_ports(fw: Firewall) -> None:
    fw.add_network(NetworkRules(BR1, ("10.99.1.0/24",)))
    fw.add_network(NetworkRules(BR2, ("10.99.2.0/24",)))
    fw.add_ports("c1", [PortMapping("tcp", "", 8080, "10.99.1.2", 80, bridge=BR1),
                        PortMapping("tcp", "", 8081, "10.99.2.2", 80, bridge=BR2)])
    fw.remove_network(BR1)
    text = listing()
    assert f"ports/c1/{BR1}" not in text and "8080" not in text
    assert f"ports/c1/{BR2}" in text and "8081" in text
    assert fw.owners() == {"c1"} and fw.bridges() == {BR2}


def test_absent_table(fw: Firewall) -> None:
    fw.remove_network(BR1)
    fw.remove_ports("nobody")
    fw.destroy()
    assert listing() == "" and fw.owners() == set() and fw.bridges() == set()


BAD_MAPPINGS = [
    ("proto", {"proto": "icmp"}),
    ("host_port", {"host_port": 0}),
    ("host_port", {"host_port": 65536}),
    ("host_port", {"host_port": 65535, "count": 2}),
    ("container_port", {"container_port": 0}),
    ("container_port", {"container_port": 65535, "count": 2}),
    ("count", {"count": 0}),
    ("container_ip", {"container_ip": "10.99.1.300"}),
    ("container_ip", {"container_ip": "0.0.0.0"}),
    ("host_ip", {"host_ip": "localhost"}),
    ("host_ip", {"host_ip": "::1"}),
    ("bridge", {"bridge": "br;drop"}),
    ("bridge", {"bridge": 'dy"0'}),
    ("bridge", {"bridge": "x" * 16}),
    ("bridge", {"bridge": ""}),
]


@pytest.mark.parametrize(("field", "change"), BAD_MAPPINGS, ids=[f"{f}-{v}" for f, v in BAD_MAPPINGS])
def test_bad_mapping_changes_nothing(fw: Firewall, field: str, change: dict[str, object]) -> None:
    good = PortMapping("tcp", "", 8080, "10.99.1.2", 80, bridge=BR1)
    fw.add_ports("c1", [good])
    before = listing()
    args: dict[str, object] = {"proto": "tcp", "host_ip": "", "host_port": 9000, "container_ip": "10.99.1.3",
                               "container_port": 90, "count": 1, "bridge": BR1, **change}
    with pytest.raises(errors.InvalidArgument, match=field):
        fw.add_ports("c1", [PortMapping("tcp", "", 8081, "10.99.1.2", 81, bridge=BR1),
                            PortMapping(**args)])  # type: ignore[arg-type]
    assert listing() == before


def test_bad_names_change_nothing(fw: Firewall) -> None:
    fw.ensure()
    before = listing()
    with pytest.raises(errors.InvalidArgument, match="owner"):
        fw.add_ports("a b", [])
    with pytest.raises(errors.InvalidArgument, match="bridge"):
        fw.add_network(NetworkRules("br 0", ("10.99.1.0/24",)))
    with pytest.raises(errors.InvalidArgument, match="subnets"):
        fw.add_network(NetworkRules(BR1, ("10.99.1.1/24",)))
    with pytest.raises(errors.InvalidArgument, match="bridge"):
        fw.remove_network("a/b")
    with pytest.raises(errors.InvalidArgument, match="table"):
        Firewall("my table")
    assert listing() == before


def test_nft_failure_is_atomic(fw: Firewall, monkeypatch: pytest.MonkeyPatch) -> None:
    """A script nft rejects half-way applies nothing; the error carries nft's message."""
    fw.add_network(NetworkRules(BR1, ("10.99.1.0/24",)))
    fw.add_ports("c1", [PortMapping("tcp", "", 8080, "10.99.1.2", 80, bridge=BR1)])
    before = listing()
    real = fwmod._port_rule
    monkeypatch.setattr(fwmod, "_port_rule",
                        lambda m: "tcp dport 1 bogus" if m.host_port == 9999 else real(m))
    with pytest.raises(errors.Internal, match="syntax error") as info:
        fw.add_ports("c1", [PortMapping("tcp", "", 8081, "10.99.1.2", 81, bridge=BR1),
                            PortMapping("tcp", "", 9999, "10.99.1.2", 99, bridge=BR1)])
    assert isinstance(info.value.__cause__, subprocess.CalledProcessError)
    assert listing() == before


def test_missing_nft_is_unavailable() -> None:
    with pytest.raises(errors.Unavailable, match="not found"):
        Firewall(TABLE, nft=f"/nonexistent/nft-{PID}").ensure()


# -- real traffic ---------------------------------------------------------------------------------
def test_published_ports_from_loopback(fw: Firewall, topo: Topo) -> None:
    net = free_base()
    hp = free_ports(5)
    topo.bridge(BR1, f"{net}.1.1/24")
    topo.sysctl(f"net.ipv4.conf.{BR1}.route_localnet", "1")  # the daemon does this for its bridges
    topo.netns("a", f"dyv{TAG}a", f"{net}.1.2/24", f"{net}.1.1", bridge=BR1)
    topo.server("a", 80, 9000, 9001, hp + 3, hp + 4)
    fw.add_network(NetworkRules(BR1, (f"{net}.1.0/24",)))
    cip = f"{net}.1.2"
    fw.add_ports("c1", [PortMapping("tcp", "127.0.0.1", hp, cip, 80, bridge=BR1),
                        PortMapping("tcp", "", hp + 1, cip, 9000, count=2, bridge=BR1),
                        PortMapping("tcp", "", hp + 3, cip, hp + 3, count=2, bridge=BR1)])
    gw = f"{net}.1.1"  # 127.0.0.1 masqueraded to the bridge's address
    assert host_connect(hp) == f"80 {gw}"
    assert host_connect(hp + 1) == f"9000 {gw}"
    assert host_connect(hp + 2) == f"9001 {gw}"
    assert host_connect(hp + 3) == f"{hp + 3} {gw}"
    assert host_connect(hp + 4) == f"{hp + 4} {gw}"
    fw.remove_ports("c1")
    assert host_connect(hp) == "FAIL ConnectionRefusedError"


def test_isolation_internal_and_masquerade(fw: Firewall, topo: Topo) -> None:
    net = free_base()
    topo.sysctl("net.ipv4.ip_forward", "1")
    topo.bridge(BR1, f"{net}.1.1/24")
    topo.bridge(BR2, f"{net}.2.1/24")
    topo.netns("a", f"dyv{TAG}a", f"{net}.1.2/24", f"{net}.1.1", bridge=BR1)
    topo.netns("b", f"dyv{TAG}b", f"{net}.2.2/24", f"{net}.2.1", bridge=BR2)
    # "c" is outside dockyard: a namespace behind a plain routed veth
    topo.netns("c", f"dyv{TAG}c", f"{net}.3.2/24", f"{net}.3.1", host_addr=f"{net}.3.1/24")
    for ns in "abc":
        topo.server(ns, 80)
    a, b, c = f"{net}.1.2", f"{net}.2.2", f"{net}.3.2"

    assert topo.connect("a", b, 80) == f"80 {a}"  # the topology routes before any rules
    assert topo.connect("a", c, 80) == f"80 {a}"

    fw.add_network(NetworkRules(BR1, (f"{net}.1.0/24",)))
    fw.add_network(NetworkRules(BR2, (f"{net}.2.0/24",)))
    assert topo.connect("a", b, 80).startswith("FAIL")
    assert topo.connect("b", a, 80).startswith("FAIL")
    assert topo.connect("a", c, 80) == f"80 {net}.3.1"  # masqueraded on the way out

    fw.add_network(NetworkRules(BR1, (f"{net}.1.0/24",), internal=True))
    assert topo.connect("a", c, 80).startswith("FAIL")
    assert topo.connect("b", c, 80) == f"80 {net}.3.1"

    fw.remove_network(BR1)
    fw.remove_network(BR2)
    assert topo.connect("a", b, 80) == f"80 {a}"


def bridge_netfilter() -> bool:
    """Bridged (same-bridge) IPv4 traffic goes through the inet forward hook (br_netfilter)."""
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:
        return False


@pytest.mark.skipif(not bridge_netfilter(), reason="icc needs br_netfilter with bridge-nf-call-iptables=1")
def test_icc_and_hairpin(fw: Firewall, topo: Topo) -> None:
    net = free_base()
    hp = free_ports(1)
    topo.bridge(BR1, f"{net}.1.1/24")
    topo.netns("a", f"dyv{TAG}a", f"{net}.1.2/24", f"{net}.1.1", bridge=BR1)
    topo.netns("b", f"dyv{TAG}b", f"{net}.1.3/24", f"{net}.1.1", bridge=BR1)
    topo.server("b", 80)
    a, b, gw = f"{net}.1.2", f"{net}.1.3", f"{net}.1.1"
    fw.add_network(NetworkRules(BR1, (f"{net}.1.0/24",)))
    assert topo.connect("a", b, 80) == f"80 {a}"
    fw.add_network(NetworkRules(BR1, (f"{net}.1.0/24",), icc=False))
    assert topo.connect("a", b, 80).startswith("FAIL")
    # a published port stays reachable from the same bridge (hairpin through the gateway address);
    # br_netfilter bridges the DNATed packet (no input interface at postrouting, so no masquerade)
    # and its conntrack un-NATs the reply: b sees a's own address, as with Docker
    fw.add_ports("cb", [PortMapping("tcp", gw, hp, b, 80, bridge=BR1)])
    assert topo.connect("a", gw, hp) == f"80 {a}"
