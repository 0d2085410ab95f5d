"""dockyardd as a service: systemd socket activation (-H fd://) and readiness (Type=notify), SIGHUP
reload of the config file, live-restore off, --detach, and the unit files `make install-service`
writes. systemd itself is not PID 1 here: `systemd-socket-activate` passes the socket exactly as
systemd does (LISTEN_FDS/LISTEN_PID), and the test plays the service manager's notify socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cleanup import remove_network_leftovers
from tests.conftest import BIN, LiveDaemon, _wait_up, daemon_argv, start_daemon, stop_daemon, unique

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]


class NotifySocket:
    """The service manager's end of sd_notify: a datagram socket collecting the daemon's messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def expect(self, field: str, timeout: float = 30) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            fields = dict(line.partition("=")[::2] for line in msg.splitlines())
            key, _, value = field.partition("=")
            if fields.get(key) == value:
                return fields
        raise AssertionError(f"no {field} from the daemon within {timeout}s")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def info(d: LiveDaemon) -> dict[str, object]:
    out: dict[str, object] = json.loads(d.cli("info", "--format", "{{json .}}").stdout)
    return out


def test_socket_activation_notify_and_reload(tmp_path: Path, notify: NotifySocket) -> None:
    argv, sock, data_root, exec_root = daemon_argv(tmp_path)
    data_root.mkdir(parents=True)
    exec_root.mkdir(mode=0o711)
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:1"]}))
    log = tmp_path / "dockyardd.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", str(sock), "-E", f"NOTIFY_SOCKET={notify.path}",
             *argv, "-H", "fd://", "--config-file", str(conf)],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    d = LiveDaemon(proc, sock, data_root, exec_root, log)
    try:
        # systemd-socket-activate starts the daemon on the first connection; that client waits in
        # the socket's backlog and is served once the engine is up
        assert d.cli("version", "--format", "{{.Server.Version}}", timeout=60).stdout.strip()
        ready = notify.expect("READY=1")
        assert ready.get("MAINPID") == str(proc.pid)   # it exec'd the daemon in place
        d = _wait_up(d)
        assert "fd://" in log.read_text()
        assert info(d)["RegistryConfig"]["Mirrors"] == ["http://127.0.0.1:1/"]  # type: ignore[index]

        d.cli("bootstrap", "busybox", timeout=120)
        name = unique("svc")
        d.cli("run", "-d", "--name", name, "busybox", "sleep", "300")

        # SIGHUP: reloadable keys apply at once, a key needing a restart is reported and left
        conf.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:2"], "live-restore": True,
                                    "group": "root"}))
        proc.send_signal(signal.SIGHUP)
        notify.expect("RELOADING=1")
        notify.expect("READY=1")
        assert info(d)["RegistryConfig"]["Mirrors"] == ["http://127.0.0.1:2/"]  # type: ignore[index]
        assert "take effect only after a restart: group" in log.read_text()

        # a broken file is refused with the key named, and the running configuration stays
        conf.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:3"], "no-such-key": 1}))
        proc.send_signal(signal.SIGHUP)
        notify.expect("READY=1")
        assert "no-such-key" in log.read_text()
        assert info(d)["RegistryConfig"]["Mirrors"] == ["http://127.0.0.1:2/"]  # type: ignore[index]

        # a clean stop says STOPPING=1 and leaves the container running (live restore)
        pid = int(d.cli("inspect", "-f", "{{.State.Pid}}", name).stdout)
        proc.send_signal(signal.SIGTERM)
        notify.expect("STOPPING=1")
        assert proc.wait(30) == 0
        os.kill(pid, 0)
        assert sock.exists()   # the socket is systemd's (here: the activator's) to remove
    finally:
        if proc.poll() is None:
            stop_daemon(d)
        else:   # removes the container through a daemon of our own on the same roots
            stop_daemon(start_daemon_on(d))


def start_daemon_on(d: LiveDaemon) -> LiveDaemon:
    """A plain daemon on a stopped one's roots and socket path."""
    argv = [a for a in d.proc.args if isinstance(a, str)]  # type: ignore[union-attr]
    own = argv[argv.index(str(BIN / "dockyardd")):argv.index("-H")]
    d.sock.unlink(missing_ok=True)
    with open(d.log, "ab") as logf:
        proc = subprocess.Popen([*own, "-H", f"unix://{d.sock}"], stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=d.data_root.parent)
    return _wait_up(LiveDaemon(proc, d.sock, d.data_root, d.exec_root, d.log))


def test_live_restore_off_stops_containers_at_shutdown(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "--live-restore=false")
    try:
        assert info(d)["LiveRestoreEnabled"] is False
        d.cli("bootstrap", "busybox", timeout=120)
        name = unique("nolr")
        d.cli("run", "-d", "--name", name, "busybox", "sleep", "300")
        pid = int(d.cli("inspect", "-f", "{{.State.Pid}}", name).stdout)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(60) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        d = start_daemon_on(d)
        assert d.cli("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == b"exited"
    finally:
        stop_daemon(d)


def test_default_address_pools(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "--default-address-pool", "base=10.231.0.0/16,size=24")
    try:
        net = unique("pool")
        d.cli("network", "create", net)
        subnet = d.cli("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", net).stdout.strip()
        assert subnet.startswith(b"10.231.") and subnet.endswith(b"/24"), subnet
        d.cli("network", "rm", net)
    finally:
        stop_daemon(d)


def test_detach_returns_once_ready(tmp_path: Path) -> None:
    argv, sock, data_root, exec_root = daemon_argv(tmp_path)
    log = tmp_path / "detached.log"
    res = subprocess.run([*argv, "-H", f"unix://{sock}", "--detach", "--log-file", str(log)],
                         capture_output=True, timeout=150, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    pid = int(res.stdout)
    # the parent has exited and the API already answers: no polling needed
    probe = socket.socket(socket.AF_UNIX)
    probe.connect(str(sock))
    probe.close()
    assert (exec_root / "dockyardd.pid").read_text().strip() == str(pid)
    assert os.getsid(pid) == pid          # a session of its own
    try:
        # a second daemon on the same data root fails, and --detach says so with its exit status
        again = subprocess.run([*argv, "-H", f"unix://{sock}2", "--detach", "--log-file", str(log)],
                               capture_output=True, timeout=150, cwd=tmp_path)
        assert again.returncode == 1
        assert b"before it was ready" in again.stderr and str(log).encode() in again.stderr
        assert "another dockyardd" in log.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        remove_network_leftovers(argv, data_root)
        shutil.rmtree(exec_root, ignore_errors=True)


def test_install_service_writes_valid_units(tmp_path: Path) -> None:
    units = tmp_path / "units"
    subprocess.run(["make", "-s", "-C", str(REPO), "install-service", f"SYSTEMD_DIR={units}",
                    "SOCKET_GROUP=root", "SYSTEMCTL=true"], check=True, capture_output=True, timeout=300)
    service = (units / "dockyard.service").read_text()
    for line in ("Type=notify", "Delegate=yes", "KillMode=process",
                 f"ExecStart={REPO}/.venv/bin/dockyardd -H fd://"):
        assert line in service.splitlines()
    assert "SocketGroup=root" in (units / "dockyard.socket").read_text()
    if shutil.which("systemd-analyze"):
        res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(units / "dockyard.socket"),
                              str(units / "dockyard.service")], capture_output=True, text=True)
        assert res.returncode == 0 and not res.stderr.strip(), res.stderr
