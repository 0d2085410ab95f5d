"""Registry credentials in the docker CLI's ``config.json`` (``$DOCKER_CONFIG`` or ~/.docker), so
``docker login`` and ``dockyard login`` share them; credential helpers (``credsStore``/
``credHelpers``) are asked through their ``docker-credential-<name> get`` protocol."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from dockyard.oci import reference

INDEX_SERVER = "https://index.docker.io/v1/"


def config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _load() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(data: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent="\t") + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def server_key(registry: str) -> str:
    return INDEX_SERVER if registry in ("", "docker.io", "index.docker.io", "registry-1.docker.io") else registry


def server_of(image: str) -> str:
    return server_key(reference.parse(image).domain)


def credentials(server: str) -> dict[str, str]:
    cfg = _load()
    helper = (cfg.get("credHelpers") or {}).get(server) or cfg.get("credsStore")
    if helper:
        try:
            out = subprocess.run([f"docker-credential-{helper}", "get"], input=server.encode(),
                                 capture_output=True, timeout=30, check=True).stdout
            data = json.loads(out)
            return {"username": data.get("Username", ""), "password": data.get("Secret", ""),
                    "serveraddress": server}
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    entry = (cfg.get("auths") or {}).get(server) or {}
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode(errors="replace").partition(":")
        return {"username": user, "password": password, "serveraddress": server}
    return {}


def header_for(server: str) -> dict[str, str]:
    creds = credentials(server)
    if not creds:
        return {}
    raw = base64.urlsafe_b64encode(json.dumps(creds).encode()).decode()
    return {"X-Registry-Auth": raw}


def store(server: str, username: str, password: str) -> None:
    cfg = _load()
    cfg.setdefault("auths", {})[server] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _save(cfg)


def forget(server: str) -> bool:
    cfg = _load()
    if server not in (cfg.get("auths") or {}):
        return False
    del cfg["auths"][server]
    _save(cfg)
    return True
