"""The embedded DNS server: Docker's 127.0.0.11 for containers on user-defined networks.

The daemon binds a UDP and a TCP socket to 127.0.0.11:53 inside each container's network namespace
and hands them to :class:`EmbeddedDNS`, which serves them from the daemon's event loop (one loop for
every container, no thread or process per container). Container names, aliases and their reverse
records come from the ``lookup``/``reverse`` callbacks; every other query is forwarded to the
container's upstream resolvers, from the daemon's own network namespace. The behaviour follows
moby's ``libnetwork/resolver.go``; wire format is dnspython's.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import logging
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import dns.asyncquery
import dns.entropy
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.reversename
import dns.rrset

from dockyard.errors import AlreadyExists

log = logging.getLogger(__name__)

Lookup = Callable[[str, str], list[str] | None]  # (key, lowercase name without the dot) -> addresses
Reverse = Callable[[str, str], str | None]  # (key, IP address) -> name for PTR
Upstreams = Callable[[str], list[tuple[str, int]]]  # key -> [(ip, port)] in order of preference

TTL = 600  # Docker's respTTL for the names it answers itself
MAX_UPSTREAMS = 3  # Docker's maxExtDNS (and glibc's MAXNS): later servers are never asked
UPSTREAM_TIMEOUT = 2.0  # seconds per upstream server and transport
MAX_FORWARDS = 1024  # forwards in flight per container (Docker's maxConcurrent); beyond: REFUSED
MAX_TCP_CONNECTIONS = 64  # per container; each costs a file descriptor in the daemon
TCP_LIMIT = 65535  # a DNS message over TCP has a 16-bit length
TCP_IDLE_TIMEOUT = 8.0  # seconds a TCP client may stay silent (miekg/dns's default, which Docker uses)
WARN_INTERVAL = 2.0  # seconds between "too many queries" warnings for one container (Docker's)


@dataclass(eq=False)
class _Container:
    key: str
    udp: asyncio.DatagramTransport | None = None
    udp_lost: asyncio.Future[None] | None = None
    tcp: asyncio.Server | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    forwards: int = 0
    warned: float = 0.0
    closed: bool = False

    def track(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: EmbeddedDNS, c: _Container) -> None:
        self.server, self.c = server, c

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # set here, not after the await in add(): a datagram may arrive in between
        self.c.udp = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._datagram(self.c, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns %s: udp error: %s", self.c.key, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.c.udp_lost is not None and not self.c.udp_lost.done():
            self.c.udp_lost.set_result(None)


def _reply(q: dns.message.Message, rcode: dns.rcode.Rcode = dns.rcode.NOERROR) -> dns.message.Message:
    r = dns.message.make_response(q)
    r.flags |= dns.flags.RA  # like Docker: we recurse (forward) for the client
    r.set_rcode(rcode)
    return r


def _udp_limit(q: dns.message.Message) -> int:
    """The largest UDP reply the client accepts: 512 bytes unless its EDNS says more (RFC 6891)."""
    return max(512, q.payload)


def _wire(r: dns.message.Message, limit: int) -> bytes:
    # dnspython truncates whole RRsets and sets TC, so the client retries over TCP
    return r.to_wire(max_size=limit, prefer_truncation=True)


class EmbeddedDNS:
    """Serve the DNS sockets of many containers; each is registered under the caller's ``key``."""

    def __init__(self, lookup: Lookup, reverse: Reverse, upstreams: Upstreams) -> None:
        self._lookup, self._reverse, self._upstreams = lookup, reverse, upstreams
        self._containers: dict[str, _Container] = {}

    async def add(self, key: str, udp: socket.socket, tcp: socket.socket) -> None:
        """Serve ``udp`` (bound) and ``tcp`` (bound, listening or not) for container ``key``.

        The sockets belong to the server from here on: :meth:`remove` closes them, and so does a
        failing ``add``, since an open socket would keep the container's network namespace alive.
        """
        if key in self._containers:
            udp.close()
            tcp.close()
            raise AlreadyExists(f"embedded DNS already serves {key}")
        c = self._containers[key] = _Container(key)
        loop = asyncio.get_running_loop()
        try:
            c.udp_lost = loop.create_future()
            await loop.create_datagram_endpoint(lambda: _UDPProtocol(self, c), sock=udp)
            c.tcp = await asyncio.start_server(lambda r, w: self._serve_tcp(c, r, w), sock=tcp)
        except BaseException:
            await self.remove(key)
            udp.close()
            tcp.close()
            raise

    async def remove(self, key: str) -> None:
        """Stop serving ``key`` and close its sockets and TCP connections (no-op for unknown keys)."""
        c = self._containers.pop(key, None)
        if c is None:
            return
        c.closed = True
        if c.tcp is not None:
            c.tcp.close()  # closes the listening socket at once
        if c.udp is not None:
            c.udp.close()  # the socket closes on the next loop iteration, after connection_lost
        for task in list(c.tasks):
            task.cancel()  # forwards and TCP connections; these close the accepted sockets
        await asyncio.gather(*c.tasks, return_exceptions=True)
        for w in list(c.writers):
            w.close()
        if c.udp is not None and c.udp_lost is not None:
            await c.udp_lost
        await asyncio.sleep(0)  # let the transports' close callbacks release their sockets

    async def close(self) -> None:
        """Stop serving every container."""
        for key in list(self._containers):
            await self.remove(key)

    # --- queries ---------------------------------------------------------------------------------

    def _parse(self, c: _Container, data: bytes) -> dns.message.Message | None:
        try:
            q = dns.message.from_wire(data)
        except Exception as exc:  # any malformed input: drop it, never the server
            log.debug("dns %s: malformed query dropped: %s", c.key, exc)
            return None
        if q.flags & dns.flags.QR:
            log.debug("dns %s: response packet dropped", c.key)  # no reflection loops
            return None
        return q

    def _local(self, c: _Container, q: dns.message.Message, limit: int) -> bytes | None:
        """The reply to ``q`` when it is ours to answer, else None (forward it)."""
        if q.opcode() != dns.opcode.QUERY:
            return _wire(_reply(q, dns.rcode.NOTIMP), limit)
        if len(q.question) != 1:
            return _wire(_reply(q, dns.rcode.FORMERR), limit)
        qname, qtype = q.question[0].name, q.question[0].rdtype
        if q.question[0].rdclass != dns.rdataclass.IN:
            return None
        if qtype in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX):
            addrs = self._lookup(c.key, qname.to_text(omit_final_dot=True).lower())
            if addrs is None:
                return None
            r = _reply(q)
            if qtype == dns.rdatatype.MX:
                return _wire(r, limit)  # a known name has no MX: empty NOERROR, "implicit MX" (RFC 5321)
            version = 4 if qtype == dns.rdatatype.A else 6
            ips = [a for a in addrs if ipaddress.ip_address(a).version == version]
            random.shuffle(ips)  # round-robin among containers sharing an alias, as Docker does
            # Like Docker, drop records one by one until the reply fits rather than sending an empty
            # truncated answer: resolvers without TCP fallback (musl < 1.2.4) still get addresses.
            # A record takes at least 16 bytes on the wire, so at most limit // 16 can fit.
            for n in range(min(len(ips), limit // 16), -1, -1):
                r.answer = [dns.rrset.from_text_list(qname, TTL, "IN", qtype, ips[:n])] if n else []
                if n < len(ips):
                    r.flags |= dns.flags.TC
                with contextlib.suppress(dns.exception.TooBig):
                    return r.to_wire(max_size=limit)
            return _wire(r, limit)
        if qtype == dns.rdatatype.PTR:
            try:
                ip = str(ipaddress.ip_address(dns.reversename.to_address(qname)))
            except (dns.exception.DNSException, ValueError):
                return None  # not a complete in-addr.arpa / ip6.arpa name: maybe upstream knows it
            host = self._reverse(c.key, ip)
            if host is None:
                return None
            r = _reply(q)
            ptr = dns.rdtypes.ANY.PTR.PTR(dns.rdataclass.IN, dns.rdatatype.PTR, dns.name.from_text(host))
            r.answer = [dns.rrset.from_rdata(qname, TTL, ptr)]
            return _wire(r, limit)
        return None

    async def _forward(self, c: _Container, q: dns.message.Message, tcp: bool) -> dns.message.Message:
        """Ask the upstreams in order; the first usable response, with the client's ID, or SERVFAIL.

        UDP clients are forwarded over UDP, and a truncated upstream answer is asked again over TCP:
        upstreams without EDNS truncate at 512 bytes although the client may take more, and the
        reply is then cut to the client's size by whole RRsets (with TC), which still gives clients
        without TCP fallback whatever fits. TCP clients usually come after a truncated reply, so
        they are forwarded over TCP at once, as Docker does. SERVFAIL and REFUSED mean "ask the
        next server"; any other response, NXDOMAIN included, is the answer (Docker's rule).
        """
        fwd = copy.copy(q)
        fwd.id = dns.entropy.random_16()  # the client's ID may be predictable; don't expose it upstream
        try:
            servers = self._upstreams(c.key)[:MAX_UPSTREAMS]
        except Exception:
            log.exception("dns %s: no upstream servers", c.key)
            servers = []
        for host, port in servers:
            try:
                if tcp:
                    r = await dns.asyncquery.tcp(fwd, host, UPSTREAM_TIMEOUT, port)
                else:
                    r = await dns.asyncquery.udp(fwd, host, UPSTREAM_TIMEOUT, port)
                    if r.flags & dns.flags.TC:
                        try:
                            r = await dns.asyncquery.tcp(fwd, host, UPSTREAM_TIMEOUT, port)
                        except Exception as exc:  # keep the truncated answer: the client may retry
                            log.debug("dns %s: tcp retry to %s:%d failed: %s", c.key, host, port, exc)
            except Exception as exc:  # timeout, ICMP unreachable, reset, garbage: next server
                log.debug("dns %s: upstream %s:%d failed: %s", c.key, host, port, exc)
                continue
            if r.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                log.debug(
                    "dns %s: upstream %s:%d answered %s", c.key, host, port, dns.rcode.to_text(r.rcode())
                )
                continue
            r.id = q.id
            return r
        return _reply(q, dns.rcode.SERVFAIL)  # no upstream, or none answered (Docker's behaviour)

    def _too_busy(self, c: _Container, what: str) -> None:
        now = time.monotonic()
        if now - c.warned >= WARN_INTERVAL:
            c.warned = now
            log.warning("dns %s: more than %s; refusing", c.key, what)

    def _datagram(self, c: _Container, data: bytes, addr: tuple[str, int]) -> None:
        q = self._parse(c, data)
        if q is None or c.udp is None:
            return
        limit = _udp_limit(q)
        try:
            wire = self._local(c, q, limit)
            if wire is None and c.forwards >= MAX_FORWARDS:
                # answer at once instead of queueing: a flood must not grow tasks without bound
                self._too_busy(c, f"{MAX_FORWARDS} concurrent forwarded queries")
                wire = _wire(_reply(q, dns.rcode.REFUSED), limit)
        except Exception:
            log.exception("dns %s: failed to answer %s", c.key, q.question[:1])
            wire = _wire(_reply(q, dns.rcode.SERVFAIL), limit)
        if wire is not None:
            c.udp.sendto(wire, addr)
            return
        c.forwards += 1
        c.track(asyncio.get_running_loop().create_task(self._forward_udp(c, q, addr, limit)))

    async def _forward_udp(
        self, c: _Container, q: dns.message.Message, addr: tuple[str, int], limit: int
    ) -> None:
        try:
            wire = _wire(await self._forward(c, q, tcp=False), limit)
            if c.udp is not None and not c.udp.is_closing():
                c.udp.sendto(wire, addr)
        except Exception:
            log.exception("dns %s: failed to forward %s", c.key, q.question[:1])
        finally:
            c.forwards -= 1

    async def _serve_tcp(
        self, c: _Container, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """DNS over TCP (RFC 7766): length-prefixed queries, answered in order, until idle or bad input."""
        if c.closed or len(c.writers) >= MAX_TCP_CONNECTIONS:
            if not c.closed:
                self._too_busy(c, f"{MAX_TCP_CONNECTIONS} TCP connections")
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            c.track(task)
        c.writers.add(writer)
        try:
            while True:
                try:
                    (size,) = struct.unpack(
                        "!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    )
                    data = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, TimeoutError, OSError):
                    return
                q = self._parse(c, data)
                if q is None:
                    return  # the stream may be out of step: close the connection
                try:
                    wire = self._local(c, q, TCP_LIMIT) or _wire(
                        await self._forward(c, q, tcp=True), TCP_LIMIT
                    )
                except Exception:
                    log.exception("dns %s: failed to answer %s", c.key, q.question[:1])
                    wire = _wire(_reply(q, dns.rcode.SERVFAIL), TCP_LIMIT)
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except OSError as exc:
            log.debug("dns %s: tcp connection: %s", c.key, exc)
        finally:
            c.writers.discard(writer)
            writer.close()
