"""``dockyard registry serve|gc``: the registry server is its own program, reached through the
``dockyard`` command (cli/main.py hands ``registry ...`` over before building the client parser)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError

DEFAULT_ADDR = "127.0.0.1:5000"
DEFAULT_ROOT = "/var/lib/dockyard-registry"
ACCESS_FORMAT = '%a "%r" %s %b %Tfs'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard registry",
                                     description="An OCI distribution (v1.1) registry server.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = sub.add_parser("serve", help="serve the registry over HTTP")
    serve.add_argument("--addr", default=DEFAULT_ADDR, help=f"host:port to listen on (default {DEFAULT_ADDR})")
    serve.add_argument("--root", default=DEFAULT_ROOT, help=f"storage directory (default {DEFAULT_ROOT})")
    serve.add_argument("--upload-ttl", type=float, default=24.0, metavar="HOURS",
                       help="expire upload sessions idle this long (default 24)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--htpasswd", metavar="FILE", help="users (bcrypt, htpasswd -B): Basic auth")
    serve.add_argument("--auth", choices=["none", "basic", "token"],
                       help="auth scheme (default: basic with --htpasswd, else none)")
    serve.add_argument("--auth-policy", metavar="FILE", help='JSON {"user": {"repo-glob": ["pull", "push"]}}')
    serve.add_argument("--token-key", metavar="FILE", help="token signing key (default: random per start)")
    serve.add_argument("--tls-cert", metavar="FILE")
    serve.add_argument("--tls-key", metavar="FILE")
    gc = sub.add_parser("gc", help="delete blobs no manifest refers to, and stale uploads")
    gc.add_argument("--root", default=DEFAULT_ROOT)
    gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    gc.add_argument("--upload-ttl", type=float, default=24.0, metavar="HOURS",
                    help="expire upload sessions idle this long (default 24)")
    gc.add_argument("--min-age", type=float, default=3600.0, metavar="SECONDS",
                    help="keep unreferenced blobs younger than this (a push in progress; default 3600)")
    return parser


def _split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"dockyard registry: invalid --addr {addr!r}: expected host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from dockyard.registry.app import build_app
    from dockyard.registry.filesystem import FilesystemStorage

    host, port = _split_addr(args.addr)
    auth, ssl_context = _security(args, host)
    storage = FilesystemStorage(Path(args.root))
    app = build_app(storage, upload_ttl=args.upload_ttl * 3600, auth=auth)
    runner = web.AppRunner(app, access_log=logging.getLogger("dockyard.registry.access"),
                           access_log_format=ACCESS_FORMAT, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    scheme = "https" if ssl_context else "http"
    logging.getLogger("dockyard.registry").info("listening on %s://%s:%d (root %s, auth %s)", scheme, host,
                                                bound, args.root, auth.mode)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _security(args: argparse.Namespace, host: str) -> tuple[Any, Any]:
    """The auth and TLS the flags ask for; passwords never travel in clear text off loopback."""
    import ipaddress

    from dockyard.registry.auth import Auth, Htpasswd, Policy, load_key
    mode = args.auth or ("basic" if args.htpasswd else "none")
    if mode != "none" and not args.htpasswd:
        raise SystemExit(f"dockyard registry: --auth {mode} needs --htpasswd FILE")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("dockyard registry: --tls-cert and --tls-key go together")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if mode != "none" and not args.tls_cert and not loopback:
        raise SystemExit(f"dockyard registry: refusing {mode} auth over plain HTTP on {host}: credentials would "
                         "cross the network in clear text; add --tls-cert and --tls-key")
    ssl_context = None
    if args.tls_cert:
        import ssl
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    try:
        auth = Auth(mode, Htpasswd(Path(args.htpasswd)) if args.htpasswd else None,
                    Policy.load(Path(args.auth_policy) if args.auth_policy else None),
                    key=load_key(Path(args.token_key) if args.token_key else None))
    except DockyardError as exc:
        raise SystemExit(f"dockyard registry: {exc}") from exc
    return auth, ssl_context


def _gc(args: argparse.Namespace) -> int:
    from dockyard.registry.filesystem import FilesystemStorage
    from dockyard.registry.gc import collect

    root = Path(args.root)
    if not (root / "repositories").is_dir():
        sys.stderr.write(f"dockyard registry gc: {root} is not a registry root\n")
        return 1
    result = collect(FilesystemStorage(root), dry_run=args.dry_run, min_age=args.min_age,
                     upload_ttl=args.upload_ttl * 3600)
    verb = "would delete" if args.dry_run else "deleted"
    for blob in result.swept:
        print(f"{verb} blob {blob.digest} ({blob.size} bytes)")
    for upload_id in result.expired_uploads:
        print(f"{verb} upload {upload_id}")
    print(f"{len(result.marked)} referenced, {len(result.swept)} blob(s) {verb} ({result.freed} bytes), "
          f"{len(result.kept_recent)} recent unreferenced kept, {len(result.expired_uploads)} upload(s) {verb}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "gc":
        return _gc(args)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        sys.stderr.write(f"dockyard registry: cannot serve on {args.addr}: {exc.strerror or exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
