"""The embedded DNS server on loopback sockets: local names, PTR, forwarding to fake upstreams
(UDP, TCP retry after truncation, failover, SERVFAIL), DNS over TCP, bad input, and closing."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dockyard.errors import AlreadyExists
from dockyard.network import dns as edns
from dockyard.network.dns import EmbeddedDNS

NAMES = {
    "web": ["10.0.0.2", "fd00::2"],
    "db": ["10.0.0.3"],  # no IPv6 address
    "many": [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(100)],
}
REVERSE = {"10.0.0.2": "web", "fd00::2": "web.mynet"}
Handler = Callable[[dns.message.Message, bool], dns.message.Message | None]


def _bind(kind: int, port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", port))
    if kind == socket.SOCK_STREAM:
        s.listen()
    return s


class Upstream:
    """A fake upstream resolver on one 127.0.0.1 port, UDP and TCP; ``handler(query, tcp)`` answers
    (None: stay silent). Records every query it gets as (name, id, tcp)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, int, bool]] = []
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def _answer(self, wire: bytes, tcp: bool) -> bytes | None:
        q = dns.message.from_wire(wire)
        self.seen.append((q.question[0].name.to_text(), q.id, tcp))
        r = self.handler(q, tcp)
        return None if r is None else r.to_wire()

    async def __aenter__(self) -> Upstream:
        tcp = _bind(socket.SOCK_STREAM)
        self.port = tcp.getsockname()[1]
        up = self

        class Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.t = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                wire = up._answer(data, False)
                if wire is not None:
                    self.t.sendto(wire, addr)  # type: ignore[attr-defined]

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            wire = self._answer(await reader.readexactly(n), True)
            if wire is not None:
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
            writer.close()

        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(Proto, sock=_bind(socket.SOCK_DGRAM, self.port))
        self._tcp = await asyncio.start_server(serve, sock=tcp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._udp is not None and self._tcp is not None
        self._udp.close()
        self._tcp.close()

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def answer_a(ip: str, tc_over_udp: bool = False) -> Handler:
    def handler(q: dns.message.Message, tcp: bool) -> dns.message.Message:
        r = dns.message.make_response(q)
        if tc_over_udp and not tcp:
            r.flags |= dns.flags.TC  # like a server whose answer did not fit
        else:
            r.answer.append(dns.rrset.from_text(q.question[0].name, 30, "IN", "A", ip))
        return r

    return handler


def rcode(code: dns.rcode.Rcode) -> Handler:
    def handler(q: dns.message.Message, tcp: bool) -> dns.message.Message:
        r = dns.message.make_response(q)
        r.set_rcode(code)
        return r

    return handler


def dead_port() -> tuple[str, int]:
    """A loopback port nothing listens on: UDP gets ICMP port unreachable, TCP a reset."""
    s = _bind(socket.SOCK_DGRAM)
    port = s.getsockname()[1]
    s.close()
    return ("127.0.0.1", port)


class Served:
    """An EmbeddedDNS serving one container "c1" on fresh loopback sockets."""

    def __init__(self, upstreams: list[tuple[str, int]] | None = None, lookup: Any = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.upstreams = upstreams or []

        def default_lookup(key: str, name: str) -> list[str] | None:
            self.calls.append((key, name))
            return NAMES.get(name)

        self.server = EmbeddedDNS(
            lookup or default_lookup, lambda key, ip: REVERSE.get(ip), lambda key: self.upstreams
        )
        self.udp, self.tcp = _bind(socket.SOCK_DGRAM), _bind(socket.SOCK_STREAM)
        self.uport, self.tport = self.udp.getsockname()[1], self.tcp.getsockname()[1]

    async def __aenter__(self) -> Served:
        await self.server.add("c1", self.udp, self.tcp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    async def ask(
        self, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 5, **kw: Any
    ) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, **kw)
        if tcp:
            r = await asyncio.to_thread(dns.query.tcp, q, "127.0.0.1", timeout, self.tport)
        else:
            r = await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout, self.uport)
        assert r.id == q.id  # dnspython checks this too; the server must relay the client's ID
        return r


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


def addrs(r: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in r.answer for rd in rrset)


def test_a_and_aaaa_for_known_names() -> None:
    async def main() -> None:
        async with Served() as s:
            r = await s.ask("Web.")
            assert r.rcode() == dns.rcode.NOERROR and addrs(r) == ["10.0.0.2"]
            assert r.answer[0].ttl == 600 and r.answer[0].name.to_text() == "Web."  # the client's case
            assert r.flags & dns.flags.RA and not r.flags & dns.flags.TC
            assert s.calls == [("c1", "web")]  # lowercase, no trailing dot
            r = await s.ask("web", "AAAA", tcp=True)
            assert addrs(r) == ["fd00::2"]

    run(main)


def test_known_name_without_that_family_is_empty_noerror_not_forwarded() -> None:
    async def main() -> None:
        async with Upstream(answer_a("192.0.2.1")) as up, Served([up.addr]) as s:
            r = await s.ask("db", "AAAA")
            assert r.rcode() == dns.rcode.NOERROR and r.answer == []
            r = await s.ask("db", "MX")  # a known name has no MX: implicit MX, like Docker
            assert r.rcode() == dns.rcode.NOERROR and r.answer == []
            assert up.seen == []

    run(main)


def test_ptr() -> None:
    async def main() -> None:
        async with Served() as s:
            r = await s.ask("2.0.0.10.in-addr.arpa.", "PTR")
            assert [rd.to_text() for rd in r.answer[0]] == ["web."] and r.answer[0].ttl == 600
            r = await s.ask(
                "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "PTR"
            )
            assert [rd.to_text() for rd in r.answer[0]] == ["web.mynet."]

    run(main)


def test_unknown_names_and_other_types_are_forwarded() -> None:
    async def main() -> None:
        async with Upstream(answer_a("192.0.2.7")) as up, Served([up.addr]) as s:
            r = await s.ask("example.com")
            assert addrs(r) == ["192.0.2.7"] and r.answer[0].ttl == 30
            r = await s.ask("example.org", tcp=True)
            assert addrs(r) == ["192.0.2.7"]
            await s.ask("web", "TXT")  # only A/AAAA/MX/PTR of our names are answered here
            await s.ask("9.9.9.10.in-addr.arpa", "PTR")  # not a container's address
            assert [(name, tcp) for name, _, tcp in up.seen] == [
                ("example.com.", False),
                ("example.org.", True),
                ("web.", False),
                ("9.9.9.10.in-addr.arpa.", False),
            ]

    run(main)


def test_truncated_udp_answer_is_retried_over_tcp() -> None:
    async def main() -> None:
        async with Upstream(answer_a("192.0.2.9", tc_over_udp=True)) as up, Served([up.addr]) as s:
            r = await s.ask("big.example")
            assert addrs(r) == ["192.0.2.9"] and not r.flags & dns.flags.TC
            assert [tcp for _, _, tcp in up.seen] == [False, True]

    run(main)


def test_dead_and_failing_upstreams_fall_through_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edns, "UPSTREAM_TIMEOUT", 0.3)

    async def main() -> None:
        async with (
            Upstream(lambda q, tcp: None) as silent,
            Upstream(rcode(dns.rcode.SERVFAIL)) as failing,
            Upstream(answer_a("192.0.2.3")) as good,
        ):
            async with Served([dead_port(), silent.addr, good.addr]) as s:
                assert addrs(await s.ask("x.example")) == ["192.0.2.3"]
                assert len(silent.seen) == 1
            async with Served([failing.addr, good.addr]) as s:
                assert addrs(await s.ask("y.example", tcp=True)) == ["192.0.2.3"]
            async with Served([dead_port(), silent.addr, failing.addr]) as s:
                assert (await s.ask("z.example")).rcode() == dns.rcode.SERVFAIL
            async with Served([]) as s:
                assert (await s.ask("z.example", tcp=True)).rcode() == dns.rcode.SERVFAIL
            # NXDOMAIN is an answer, not a failure: relayed, the next server is not asked
            async with Upstream(rcode(dns.rcode.NXDOMAIN)) as nx, Served([nx.addr, good.addr]) as s:
                good.seen.clear()
                assert (await s.ask("nope.example")).rcode() == dns.rcode.NXDOMAIN
                assert good.seen == []

    run(main)


def test_upstream_sees_a_fresh_id() -> None:
    async def main() -> None:
        async with Upstream(answer_a("192.0.2.1")) as up, Served([up.addr]) as s:
            ids = set()
            for _ in range(4):
                q = dns.message.make_query("id.example", "A")
                q.id = 4242
                r = await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", 5, s.uport)
                assert r.id == 4242
                ids.add(up.seen[-1][1])
            assert ids != {4242}

    run(main)


def test_large_local_answer_is_trimmed_to_the_client_size() -> None:
    async def main() -> None:
        async with Served() as s:
            r = await s.ask("many")  # 100 A records do not fit 512 bytes
            assert r.flags & dns.flags.TC and 10 < len(addrs(r)) < 100
            r = await s.ask("many", use_edns=0, payload=4096)
            assert not r.flags & dns.flags.TC and len(addrs(r)) == 100
            r = await s.ask("many", tcp=True)
            assert not r.flags & dns.flags.TC and len(addrs(r)) == 100

    run(main)


def test_bad_input_is_dropped_and_the_server_keeps_answering() -> None:
    async def main() -> None:
        async with Served() as s:
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.settimeout(0.2)
            response = dns.message.make_response(dns.message.make_query("web", "A")).to_wire()
            for junk in (b"", b"\x00", b"\xff" * 40, response):
                c.sendto(junk, ("127.0.0.1", s.uport))
                with pytest.raises(TimeoutError):
                    await asyncio.to_thread(c.recv, 512)
            c.close()
            # TCP: garbage closes the connection
            reader, writer = await asyncio.open_connection("127.0.0.1", s.tport)
            writer.write(b"\x00\x05hello")
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            # other opcodes and question counts get an error answer rather than silence
            q = dns.message.make_query("web", "A")
            q.set_opcode(dns.opcode.NOTIFY)
            r = await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", 5, s.uport)
            assert r.rcode() == dns.rcode.NOTIMP
            assert addrs(await s.ask("web")) == ["10.0.0.2"]

    run(main)


def test_callback_failure_is_servfail() -> None:
    def lookup(key: str, name: str) -> list[str] | None:
        if name == "web":
            raise RuntimeError("database is locked")
        return None

    def upstreams(key: str) -> list[tuple[str, int]]:
        raise RuntimeError("no resolv.conf")

    async def main() -> None:
        s = Served()
        s.server = EmbeddedDNS(lookup, lambda key, ip: None, upstreams)
        async with s:
            for tcp in (False, True):
                assert (await s.ask("web", tcp=tcp)).rcode() == dns.rcode.SERVFAIL
                assert (await s.ask("example.com", tcp=tcp)).rcode() == dns.rcode.SERVFAIL

    run(main)


def test_tcp_several_queries_per_connection_and_idle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edns, "TCP_IDLE_TIMEOUT", 0.5)

    async def main() -> None:
        async with Served() as s:
            reader, writer = await asyncio.open_connection("127.0.0.1", s.tport)
            queries = [dns.message.make_query(n, "A") for n in ("web", "db", "web")]
            for q in queries:  # pipelined: all sent before the first answer is read
                wire = q.to_wire()
                writer.write(struct.pack("!H", len(wire)) + wire)
            for q in queries:
                (n,) = struct.unpack("!H", await reader.readexactly(2))
                r = dns.message.from_wire(await reader.readexactly(n))
                assert r.id == q.id and r.answer[0].name == q.question[0].name
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed when idle
            writer.close()

    run(main)


def test_forward_limit_refuses_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edns, "MAX_FORWARDS", 2)
    monkeypatch.setattr(edns, "UPSTREAM_TIMEOUT", 0.5)

    async def main() -> None:
        async with Upstream(lambda q, tcp: None) as silent, Served([silent.addr]) as s:
            slow = [asyncio.create_task(s.ask(f"slow{i}.example")) for i in range(2)]
            while len(silent.seen) < 2:
                await asyncio.sleep(0.01)
            assert (await s.ask("more.example")).rcode() == dns.rcode.REFUSED
            assert addrs(await s.ask("web")) == ["10.0.0.2"]  # local names still answered
            assert [(await t).rcode() for t in slow] == [dns.rcode.SERVFAIL] * 2
            assert (await s.ask("again.example")).rcode() == dns.rcode.SERVFAIL  # slots freed

    run(main)


def test_remove_closes_the_sockets() -> None:
    async def main() -> None:
        async with Served() as s:
            reader, writer = await asyncio.open_connection("127.0.0.1", s.tport)
            await s.server.remove("c1")
            assert s.udp.fileno() == -1 and s.tcp.fileno() == -1
            assert await asyncio.wait_for(reader.read(), 5) == b""  # accepted connection closed too
            writer.close()
            await s.server.remove("c1")  # idempotent
            with pytest.raises((ConnectionRefusedError, dns.exception.Timeout)):  # nothing answers
                await s.ask("web", timeout=0.5)

    run(main)


def test_add_twice_and_close() -> None:
    async def main() -> None:
        async with Served() as s:
            udp, tcp = _bind(socket.SOCK_DGRAM), _bind(socket.SOCK_STREAM)
            with pytest.raises(AlreadyExists):
                await s.server.add("c1", udp, tcp)
            assert udp.fileno() == -1 and tcp.fileno() == -1  # not leaked
            udp, tcp = _bind(socket.SOCK_DGRAM), _bind(socket.SOCK_STREAM)
            await s.server.add("c2", udp, tcp)
            await s.server.close()
            assert {udp.fileno(), tcp.fileno(), s.udp.fileno(), s.tcp.fileno()} == {-1}

    run(main)
