"""IPAM against a real metadata database: pool subnets that skip host routes and each other,
requested subnets/gateways/ranges, addresses never handed out twice, kept across a reopen."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from dockyard.metadata.db import Database
from dockyard.network.ipam import IPAM, host_routes


def _db(tmp_path: Path) -> Database:
    db = Database(tmp_path / "metadata.db")
    db.migrate()
    return db


def test_pool_skips_routes_and_taken(tmp_path: Path) -> None:
    routes = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("172.19.0.0/16")]
    ipam = IPAM(_db(tmp_path), routes=routes)
    assert ipam.allocate_subnet("n1") == ("172.18.0.0/16", "172.18.0.1")
    assert ipam.allocate_subnet("n2") == ("172.20.0.0/16", "172.20.0.1")
    assert ipam.allocate_subnet("n3", "10.9.0.0/24", "10.9.0.254") == ("10.9.0.0/24", "10.9.0.254")
    with pytest.raises(AlreadyExists, match="overlaps"):
        ipam.allocate_subnet("n4", "10.9.0.128/25")
    with pytest.raises(InvalidArgument, match=r"it should be 10\.1\.2\.0/24"):
        ipam.allocate_subnet("n5", "10.1.2.3/24")
    with pytest.raises(InvalidArgument, match="not within subnet"):
        ipam.allocate_subnet("n6", "10.2.0.0/24", "10.3.0.1")


def test_pools_run_out(tmp_path: Path) -> None:
    ipam = IPAM(_db(tmp_path), pools=[("10.50.0.0/23", 24)], routes=[])
    ipam.allocate_subnet("a")
    ipam.allocate_subnet("b")
    with pytest.raises(FailedPrecondition, match="non-overlapping"):
        ipam.allocate_subnet("c")


def test_addresses(tmp_path: Path) -> None:
    db = _db(tmp_path)
    ipam = IPAM(db, routes=[])
    ipam.allocate_subnet("net", "10.7.0.0/29", ip_range="10.7.0.4/30")
    assert ipam.allocate_address("net", "c1") == "10.7.0.5"  # .4 is the range's network address
    assert ipam.allocate_address("net", "c2") == "10.7.0.6"
    with pytest.raises(FailedPrecondition, match="no available"):
        ipam.allocate_address("net", "c3")
    assert ipam.allocate_address("net", "c4", "10.7.0.2") == "10.7.0.2"  # --ip outside the range is fine
    with pytest.raises(AlreadyExists, match=r"Address already in use: 10\.7\.0\.2"):
        ipam.allocate_address("net", "c5", "10.7.0.2")
    with pytest.raises(AlreadyExists):
        ipam.allocate_address("net", "c5", "10.7.0.1")  # the gateway
    ipam.release_address("net", "10.7.0.5", "someone-else")  # not the owner: nothing happens
    assert ipam.addresses("net")["10.7.0.5"] == "c1"
    ipam.release_address("net", "10.7.0.5", "c1")
    db.close()
    again = IPAM(_db(tmp_path), routes=[])  # the state survives a restart
    assert again.addresses("net") == {"10.7.0.6": "c2", "10.7.0.2": "c4"}
    with pytest.raises(FailedPrecondition):  # the one free address is an auxiliary one
        again.allocate_address("net", "c6", reserved={"10.7.0.5"})
    assert again.allocate_address("net", "c7") == "10.7.0.5"
    again.release_network("net")
    assert again.addresses("net") == {}


def test_host_routes_parses_proc(tmp_path: Path) -> None:
    f = tmp_path / "route"
    f.write_text("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
                 "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
                 "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")
    assert host_routes(f) == [ipaddress.IPv4Network("192.0.2.0/24")]
