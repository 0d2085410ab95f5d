"""``dockyardd`` entry point: parse configuration, set up logging, run the server."""

from __future__ import annotations

import asyncio
import logging
import sys

from dockyard.daemon.config import load_config
from dockyard.daemon.server import serve
from dockyard.errors import DockyardError

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR, "fatal": logging.CRITICAL}


class _Formatter(logging.Formatter):
    """dockerd-like lines: time="..." level=info msg="..."."""

    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        when = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        return f'time="{when}.{int(record.msecs):03d}" level={level} msg="{msg}"'


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = load_config(sys.argv[1:] if argv is None else argv)
    except DockyardError as exc:
        print(f"dockyardd: {exc}", file=sys.stderr)
        return 1
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[cfg.log_level])
    # third-party libraries log every netlink message at debug: keep them to warnings
    for noisy in ("pyroute2", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, _LEVELS[cfg.log_level]))
    try:
        asyncio.run(serve(cfg))
    except DockyardError as exc:
        logging.getLogger("dockyard.daemon").critical("%s", exc)
        print(f"dockyardd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception:  # an unexpected failure (e.g. the engine could not open): say so and exit 1
        logging.getLogger("dockyard.daemon").critical("dockyardd failed", exc_info=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
