"""``dockyard registry serve|gc``: the registry server is its own program, reached through the
``dockyard`` command (cli/main.py hands ``registry ...`` over before building the client parser)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

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
    storage = FilesystemStorage(Path(args.root))
    app = build_app(storage, upload_ttl=args.upload_ttl * 3600)
    runner = web.AppRunner(app, access_log=logging.getLogger("dockyard.registry.access"),
                           access_log_format=ACCESS_FORMAT, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    logging.getLogger("dockyard.registry").info("listening on http://%s:%d (root %s)", host, bound, args.root)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


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
