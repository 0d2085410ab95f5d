"""The dockyard CLI's network commands, -p/--network flags and ``port`` against a live daemon;
traffic only between containers and to the host's loopback."""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.conftest import LiveDaemon, free_port, unique

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"


def _get(url: str, deadline: float = 10) -> str:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def test_cli_network_lifecycle(daemon: LiveDaemon) -> None:
    label = unique("lbl")
    net, other, ctr = unique("cnet"), unique("cnet"), unique("web")
    port = free_port()
    try:
        nid = daemon.cli("network", "create", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.1",
                         "--label", label, net).stdout.decode().strip()
        assert len(nid) == 64
        daemon.cli("network", "create", "--label", label, other)
        assert nid[:12] in daemon.cli("network", "ls", "-q", "-f", f"label={label}").stdout.decode().split()
        assert daemon.cli("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
                          net).stdout.decode() == "10.231.7.1\n"

        daemon.cli("run", "-d", "--name", ctr, "--network", net, "--network-alias", "alpha", "--ip", "10.231.7.50",
                   "-p", f"127.0.0.1:{port}:80", "--add-host", "foo=1.2.3.4", "busybox", "sh", "-c", HTTPD)
        assert daemon.cli("port", ctr).stdout.decode() == f"80/tcp -> 127.0.0.1:{port}\n"
        assert daemon.cli("port", ctr, "80/tcp").stdout.decode() == f"127.0.0.1:{port}\n"
        miss = daemon.cli("port", ctr, "81", check=False)
        assert miss.returncode == 1 and miss.stderr.decode() == f"Error: No public port '81' published for {ctr}\n"
        assert _get(f"http://127.0.0.1:{port}/") == "hello\n"
        hosts = daemon.cli("exec", ctr, "cat", "/etc/hosts").stdout.decode()
        assert "1.2.3.4\tfoo" in hosts and "10.231.7.50" in hosts
        daemon.cli("run", "--rm", "--network", net, "busybox", "ping", "-c1", "-W2", "alpha")

        daemon.cli("network", "connect", "--alias", "beta", other, ctr)
        daemon.cli("run", "--rm", "--network", other, "busybox", "ping", "-c1", "-W2", "beta")
        daemon.cli("network", "disconnect", other, ctr)

        busy = daemon.cli("network", "rm", net, other, check=False)
        assert busy.returncode == 1 and busy.stdout.decode() == f"{other}\n"
        assert busy.stderr.decode().startswith("Error response from daemon: ")
    finally:
        daemon.cli("rm", "-f", ctr, check=False)
        pruned = daemon.cli("network", "prune", "-f", "--filter", f"label={label}", check=False)
        daemon.cli("network", "rm", "-f", net, other, check=False)
    assert net in pruned.stdout.decode().splitlines()


def test_cli_run_network_flag_errors(daemon: LiveDaemon) -> None:
    bad = daemon.cli("run", "--rm", "-p", "abc:80", "busybox", "true", check=False)
    assert bad.returncode == 125 and bad.stderr.decode() == "Error: invalid hostPort: abc\n"
    bad = daemon.cli("run", "--rm", "--ip", "10.1.1.1", "busybox", "true", check=False)
    assert bad.returncode == 125
    assert "user specified IP address is supported on user defined networks only" in bad.stderr.decode()
    ok = daemon.cli("run", "--rm", "--dns", "127.0.0.1", "busybox", "true")
    assert ok.stderr.decode() == "WARNING: Localhost DNS (127.0.0.1) may fail in containers.\n"
