"""The attached flows: ``run`` (without -d), ``start -a``, ``attach`` and ``exec``.

Order follows the docker CLI: attach (hijack) and send the wait request before start, so neither
early output nor a fast exit is missed; then pump until the output ends and read the exit code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

from dockyard.client.api import Client
from dockyard.client.stream import Pump

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any


def terminal_size() -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError):
        return None
    return size.lines, size.columns


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """Put the local terminal in raw mode so keys (ctrl-c, ctrl-p ctrl-q) reach the container."""
    if not enabled or not os.isatty(0):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(0)
    try:
        # TCSANOW, not setraw's default TCSAFLUSH: keys typed before the container was ready
        # must reach it, not be thrown away.
        tty.setraw(0, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def resize_on_winch(enabled: bool, resize: Callable[[int, int], None]) -> Iterator[None]:
    if not enabled:
        yield
        return

    def push(*_: Any) -> None:
        size = terminal_size()
        if size:
            with contextlib.suppress(Exception):
                resize(*size)

    push()
    old = signal.signal(signal.SIGWINCH, push)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, old)


_PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


@contextlib.contextmanager
def proxy_signals(enabled: bool, client: Client, ref: str) -> Iterator[None]:
    """--sig-proxy: forward signals the CLI receives to the container."""
    if not enabled:
        yield
        return
    saved = {}

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(Exception):
            client.kill(ref, signal.Signals(signum).name)

    for name in _PROXIED:
        sig = getattr(signal, name)
        saved[sig] = signal.signal(sig, forward)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def attach_and_pump(client: Client, ref: str, *, tty: bool, stdin: bool, stdout: bool,
                    stderr: bool, detach_keys: str | None, before_pump: Callable[[], None],
                    sig_proxy: bool) -> str | None:
    """Hijack the attach stream, run ``before_pump`` (start), then copy until output ends."""
    sock, initial = client.attach(ref, stdin, stdout, stderr, detach_keys)
    pump = Pump(sock, initial, tty=tty, stdin=stdin)
    try:
        before_pump()
        with raw_terminal(tty and stdin), \
                resize_on_winch(tty and os.isatty(1), lambda h, w: client.resize(ref, h, w)), \
                proxy_signals(sig_proxy and not tty, client, ref):
            pump.start()
            pump.wait()
    finally:
        pump.close()
    return pump.error


def run_exec(client: Client, container: str, body: dict[str, Any], detach: bool) -> int:
    exec_id = client.exec_create(container, body)
    if detach:
        client.exec_start_detached(exec_id, {"Detach": True, "Tty": body["Tty"]})
        return 0
    start_body: dict[str, Any] = {"Detach": False, "Tty": body["Tty"]}
    size = terminal_size() if body["Tty"] else None
    if size:
        start_body["ConsoleSize"] = list(size)
    sock, initial = client.exec_start(exec_id, start_body)
    pump = Pump(sock, initial, tty=body["Tty"], stdin=body["AttachStdin"])
    try:
        with raw_terminal(body["Tty"] and body["AttachStdin"]), \
                resize_on_winch(body["Tty"] and os.isatty(1),
                                lambda h, w: client.exec_resize(exec_id, h, w)):
            pump.start()
            pump.wait()
    finally:
        pump.close()
    info = client.exec_inspect(exec_id)
    code = info.get("ExitCode")
    return int(code) if code is not None else 0
