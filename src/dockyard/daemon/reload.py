"""SIGHUP: read the flags and the config file again and apply what can change on a live daemon.

As dockerd: a file that does not parse, or holds an unknown key or a bad value, is refused with
the reason in the log and the running configuration stays as it was. Keys outside ``RELOADABLE``
(listen addresses, roots, the bridge …) are reported as needing a restart and left alone.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from dockyard.daemon.config import RELOADABLE, DaemonConfig, apply_log_level, load_config
from dockyard.errors import DockyardError

log = logging.getLogger("dockyard.daemon")

# start-up only, or facts of this run rather than settings
_NOT_COMPARED = {"argv", "detach", "log_file", "extra", "socket_gid"}
# DaemonConfig field -> the EngineConfig field it feeds
_ENGINE_FIELDS = {"registry_mirrors": "registry_mirrors", "insecure_registries": "insecure_registries",
                  "default_runtime": "default_runtime", "runtimes": "runtimes", "live_restore": "live_restore"}


def reload_config(cfg: DaemonConfig, engine: Any) -> list[str]:
    """Apply the reloadable settings that changed; returns their names (empty on refusal)."""
    try:
        new = load_config(cfg.argv)
    except DockyardError as exc:
        log.error("configuration reload refused, keeping the running configuration: %s", exc)
        return []
    except SystemExit:  # argparse already printed why; the argv cannot have changed, but be safe
        log.error("configuration reload refused: bad flags")
        return []
    changed: list[str] = []
    restart: list[str] = []
    for f in dataclasses.fields(DaemonConfig):
        if f.name in _NOT_COMPARED or getattr(new, f.name) == getattr(cfg, f.name):
            continue
        (changed if f.name in RELOADABLE else restart).append(f.name)
    for name in changed:
        value = getattr(new, name)
        setattr(cfg, name, value)
        if name in _ENGINE_FIELDS:
            setattr(engine.config, _ENGINE_FIELDS[name], value)
        elif name == "log_level":
            apply_log_level(value)
    if restart:
        log.warning("configuration changes that take effect only after a restart: %s",
                    ", ".join(n.replace("_", "-") for n in restart))
    log.info("configuration reloaded%s", f": {', '.join(n.replace('_', '-') for n in changed)} changed"
             if changed else " (nothing to change)")
    return changed
