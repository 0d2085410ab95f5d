"""Docker's context store, shared with the stock ``docker`` CLI.

Layout under ``$DOCKER_CONFIG`` (default ``~/.docker``)::

    config.json                                  {"currentContext": NAME, ...other keys kept}
    contexts/meta/<sha256(NAME)>/meta.json       {"Name", "Metadata": {"Description"},
                                                  "Endpoints": {"docker": {"Host", "SkipTLSVerify"}}}
    contexts/tls/<sha256(NAME)>/docker/{ca,cert,key}.pem

``default`` is not stored: it is the daemon ``DOCKYARD_HOST``/``DOCKER_HOST`` names, else
dockyard's own socket. Fields this module does not know (other endpoints, other metadata) are
kept when a context is rewritten. Every write is atomic (temp file, fsync, rename).

Which daemon a command talks to (``transport.host_from_env``), strongest first, as docker 28:
``--context`` (refused together with ``-H``), ``-H``, ``DOCKYARD_HOST``/``DOCKER_HOST``,
``DOCKER_CONTEXT``, ``currentContext`` of config.json, ``default``. This module is imported
only when a named context is in play; the plain ``dockyard ps`` never loads it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from dockyard import errors
from dockyard.client.transport import DEFAULT_HOST, Host, parse_host

if TYPE_CHECKING:
    from pathlib import Path

try:  # the builtin module: hashlib would load OpenSSL on the way to a command
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Python >= 3.12
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256 as _sha256  # type: ignore[assignment,unused-ignore]

DEFAULT = "default"
DEFAULT_DESCRIPTION = "Current DOCKER_HOST based configuration"
NAME_PATTERN = "^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$"
_NAME = re.compile(NAME_PATTERN)
TLS_FILES = {"ca": "ca.pem", "cert": "cert.pem", "key": "key.pem"}
IN_MEMORY = "<IN MEMORY>"


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    from pathlib import Path
    env = os.environ if env is None else env
    return Path(env.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"))


def context_id(name: str) -> str:
    """The store's directory name for a context: the hex SHA-256 of its name."""
    return str(_sha256(name.encode()).hexdigest())


def env_host(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(variable, value) of the host the environment names, ``("", "")`` if none."""
    env = os.environ if env is None else env
    for var in ("DOCKYARD_HOST", "DOCKER_HOST"):
        if env.get(var):
            return var, env[var]
    return "", ""


class Context(NamedTuple):  # not a dataclass: loaded on the way to every command run in a context
    name: str
    description: str
    host: str
    skip_tls_verify: bool = False
    tls: Mapping[str, str] = {}  # "ca"/"cert"/"key" -> file path
    meta: Mapping[str, Any] = {}  # the stored meta.json, unknown keys included
    meta_path: str = IN_MEMORY
    tls_path: str = IN_MEMORY

    def to_host(self) -> Host:
        """The endpoint as a transport ``Host``; tcp uses TLS when the context has TLS files or
        skips verification (docker's rule), verifying against its CA unless told to skip."""
        try:
            host = parse_host(self.host)
        except errors.InvalidArgument as exc:
            raise errors.InvalidArgument(f'context "{self.name}": {exc}') from exc
        if host.scheme != "tcp" or not (self.tls or self.skip_tls_verify):
            return host
        from dockyard.client.tls import TLSSettings
        settings = TLSSettings(verify=not self.skip_tls_verify, cacert=self.tls.get("ca", ""),
                               cert=self.tls.get("cert", ""), key=self.tls.get("key", ""))
        return host.with_tls(settings)

    def inspect(self) -> dict[str, Any]:
        """``docker context inspect``'s JSON for this context."""
        endpoints = dict(self.meta.get("Endpoints") or {})
        endpoints["docker"] = {**(endpoints.get("docker") or {}), "Host": self.host,
                               "SkipTLSVerify": self.skip_tls_verify}
        material = {"docker": sorted(os.path.basename(p) for p in self.tls.values())} if self.tls else {}
        return {"Name": self.name, "Metadata": self.meta.get("Metadata") or {}, "Endpoints": endpoints,
                "TLSMaterial": material, "Storage": {"MetadataPath": self.meta_path, "TLSPath": self.tls_path}}


def validate_name(name: str) -> None:
    if name == DEFAULT:
        raise errors.InvalidArgument(f'"{DEFAULT}" is a reserved context name')
    if not _NAME.match(name):
        raise errors.InvalidArgument(f'context name "{name}" is invalid, names are validated against '
                                     f'regexp "{NAME_PATTERN}"')


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    import tempfile
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Store:
    """The contexts under one config directory."""

    def __init__(self, root: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.env = os.environ if env is None else env
        self.root = root if root is not None else config_dir(self.env)
        self.meta_root = self.root / "contexts" / "meta"
        self.tls_root = self.root / "contexts" / "tls"

    # ------------------------------------------------------------ reading
    def default(self) -> Context:
        host = env_host(self.env)[1] or DEFAULT_HOST
        return Context(DEFAULT, DEFAULT_DESCRIPTION, host, meta={"Name": DEFAULT, "Metadata": {}})

    def _load(self, meta_file: Path, name: str | None = None) -> Context:
        try:
            meta = json.loads(meta_file.read_bytes())
        except FileNotFoundError as exc:
            raise errors.NotFound(f'context "{name}": context not found: open {meta_file}: '
                                  "no such file or directory") from exc
        except (OSError, ValueError) as exc:
            raise errors.InvalidArgument(f"cannot read context metadata {meta_file}: {exc}") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("Name"), str):
            raise errors.InvalidArgument(f"context metadata {meta_file} has no Name")
        docker = (meta.get("Endpoints") or {}).get("docker") or {}
        metadata = meta.get("Metadata") or {}
        ident = meta_file.parent.name
        tls_dir = self.tls_root / ident / "docker"
        tls = {key: str(tls_dir / fname) for key, fname in TLS_FILES.items() if (tls_dir / fname).is_file()}
        return Context(meta["Name"], str(metadata.get("Description") or "") if isinstance(metadata, dict) else "",
                       str(docker.get("Host") or ""), bool(docker.get("SkipTLSVerify")), tls, meta,
                       str(meta_file.parent), str(self.tls_root / ident))

    def get(self, name: str) -> Context:
        if name == DEFAULT:
            return self.default()
        return self._load(self.meta_root / context_id(name) / "meta.json", name)

    def exists(self, name: str) -> bool:
        return name == DEFAULT or (self.meta_root / context_id(name) / "meta.json").is_file()

    def entries(self) -> list[tuple[Context | None, str, str]]:
        """Every context with ``default``, sorted by name: (context, name, error); a context whose
        metadata cannot be read is listed with its error, as docker does."""
        found: list[tuple[Context | None, str, str]] = [(self.default(), DEFAULT, "")]
        try:
            dirs = sorted(self.meta_root.iterdir())
        except FileNotFoundError:
            dirs = []
        for d in dirs:
            meta_file = d / "meta.json"
            if not meta_file.is_file():
                continue
            try:
                ctx = self._load(meta_file)
            except errors.DockyardError as exc:
                found.append((None, d.name, str(exc)))
                continue
            found.append((ctx, ctx.name, ""))
        return sorted(found, key=lambda item: item[1])

    # ------------------------------------------------------------ writing
    def create(self, name: str, host: str, description: str = "", skip_tls_verify: bool = False,
               tls: Mapping[str, bytes] | None = None) -> Context:
        validate_name(name)
        if self.exists(name):
            raise errors.AlreadyExists(f'context "{name}" already exists')
        return self.write(name, host, description, skip_tls_verify, tls or {})

    def write(self, name: str, host: str, description: str, skip_tls_verify: bool,
              tls: Mapping[str, bytes], keep: Mapping[str, Any] | None = None) -> Context:
        """Store ``name`` (replacing its TLS files); ``keep`` is existing metadata to preserve."""
        meta: dict[str, Any] = dict(keep or {})
        meta["Name"] = name
        metadata = dict(meta.get("Metadata") or {})
        if description:
            metadata["Description"] = description
        else:
            metadata.pop("Description", None)
        meta["Metadata"] = metadata
        endpoints = dict(meta.get("Endpoints") or {})
        endpoints["docker"] = {**(endpoints.get("docker") or {}), "Host": host, "SkipTLSVerify": skip_tls_verify}
        meta["Endpoints"] = endpoints
        ident = context_id(name)
        tls_dir = self.tls_root / ident / "docker"
        import shutil
        if tls_dir.exists():
            shutil.rmtree(tls_dir)
        for key, data in (tls or {}).items():
            _atomic_write(tls_dir / TLS_FILES[key], data, 0o600)
        _atomic_write(self.meta_root / ident / "meta.json", json.dumps(meta, separators=(",", ":")).encode())
        return self.get(name)

    def remove(self, name: str) -> None:
        if name == DEFAULT:
            raise errors.InvalidArgument(f'"{DEFAULT}" is a reserved context name')
        ident = context_id(name)
        if not (self.meta_root / ident).is_dir():
            raise errors.NotFound(f'context "{name}" does not exist')
        import shutil
        shutil.rmtree(self.meta_root / ident)
        shutil.rmtree(self.tls_root / ident, ignore_errors=True)

    # ------------------------------------------------------------ config.json
    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    def _config(self) -> dict[str, Any]:
        try:
            data = json.loads(self.config_file.read_bytes() or b"{}")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise errors.InvalidArgument(f"cannot read {self.config_file}: {exc}") from exc
        if not isinstance(data, dict):
            raise errors.InvalidArgument(f"cannot read {self.config_file}: not a JSON object")
        return data

    def current(self) -> str:
        """``currentContext`` of config.json, else ``default``."""
        return str(self._config().get("currentContext") or DEFAULT)

    def set_current(self, name: str) -> None:
        """Make ``name`` the current context (``default`` clears the key); other keys stay as they are."""
        data = self._config()
        if name == DEFAULT:
            data.pop("currentContext", None)
        else:
            data["currentContext"] = name
        mode = self.config_file.stat().st_mode & 0o777 if self.config_file.exists() else 0o600
        _atomic_write(self.config_file, json.dumps(data, indent="\t").encode(), mode)


def resolve_name(flag: str | None, host_flag: str | None = None, env: Mapping[str, str] | None = None,
                 store: Store | None = None) -> str:
    """The context a command uses (docker's resolveContextName)."""
    env = os.environ if env is None else env
    if flag:
        return flag
    if host_flag or env_host(env)[1]:
        return DEFAULT
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"]
    return (store or Store(env=env)).current()


def context_host(name: str, env: Mapping[str, str] | None = None) -> Host:
    """The endpoint of the named context (``NotFound`` when it does not exist); reads two paths,
    without the ``Store`` (pathlib) machinery."""
    env = os.environ if env is None else env
    root = env.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    ident = context_id(name)
    meta_file = os.path.join(root, "contexts", "meta", ident, "meta.json")
    try:
        with open(meta_file, "rb") as f:
            meta = json.loads(f.read())
    except FileNotFoundError as exc:
        raise errors.NotFound(f'context "{name}": context not found: open {meta_file}: '
                              "no such file or directory") from exc
    except (OSError, ValueError) as exc:
        raise errors.InvalidArgument(f"cannot read context metadata {meta_file}: {exc}") from exc
    docker = ((meta.get("Endpoints") or {}).get("docker") or {}) if isinstance(meta, dict) else {}
    tls_dir = os.path.join(root, "contexts", "tls", ident, "docker")
    tls = {key: path for key, fname in TLS_FILES.items() if os.path.isfile(path := os.path.join(tls_dir, fname))}
    return Context(name, "", str(docker.get("Host") or ""), bool(docker.get("SkipTLSVerify")), tls).to_host()
