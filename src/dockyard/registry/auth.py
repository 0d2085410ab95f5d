"""Registry auth: none, Basic against an htpasswd file (bcrypt), or distribution-spec token auth
with a built-in token endpoint that signs JWTs scoped to repositories and actions.

A user's rights come from an optional policy file (JSON: ``{"alice": {"team/*": ["pull", "push"]},
"*": {"public/*": ["pull"]}}``, where ``"*"`` as a user means anyone, authenticated or not). Without
a policy every authenticated user may pull and push everything and anonymous users nothing.
Tokens are HS256 JWTs signed with a key only this server holds (clients never verify them; the
registry does), valid for five minutes.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument

TOKEN_TTL = 300


def _crypt(password: str, stored: str) -> str:
    with warnings.catch_warnings():  # the stdlib binding of libxcrypt, which does bcrypt ($2y$/$2b$)
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, stored) or ""


def bcrypt_hash(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10)) or ""


class Htpasswd:
    """``user:bcrypt-hash`` lines (what ``htpasswd -B`` writes); other schemes are refused."""

    def __init__(self, path: Path) -> None:
        self.users: dict[str, str] = {}
        self._ok: dict[bytes, float] = {}
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidArgument(f"cannot read htpasswd file {path}: {exc.strerror}") from exc
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, stored = line.partition(":")
            if not sep or not stored.startswith(("$2y$", "$2b$", "$2a$")):
                raise InvalidArgument(f"{path}:{n}: only bcrypt entries (htpasswd -B) are supported")
            self.users[user] = stored

    def verify(self, user: str, password: str) -> bool:
        """bcrypt on the first use of a password, then a minute from memory: every request of a
        Basic-auth client carries the password, and bcrypt is deliberately slow."""
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if self._ok.get(key, 0.0) > time.monotonic():
            return True
        stored = self.users.get(user)
        if stored is None:
            _crypt(password, "$2b$10$" + "a" * 22)  # same cost whether or not the user exists
            return False
        if not hmac.compare_digest(_crypt(password, stored), stored):
            return False
        self._ok[key] = time.monotonic() + 60
        return True


@dataclass(frozen=True)
class Scope:
    type: str           # "repository" | "registry"
    name: str           # "team/app" | "catalog"
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            raise InvalidArgument(f"invalid scope {text!r}")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))


class Policy:
    def __init__(self, rules: dict[str, dict[str, list[str]]] | None = None) -> None:
        self.rules = rules

    @classmethod
    def load(cls, path: Path | None) -> Policy:
        if path is None:
            return cls(None)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"cannot read the access policy {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidArgument(f"{path}: the access policy must be an object of users")
        return cls(data)

    def allowed(self, user: str | None, scope: Scope) -> tuple[str, ...]:
        """The actions of ``scope`` that ``user`` (None: anonymous) may perform."""
        if self.rules is None:
            return scope.actions if user else ()
        granted: set[str] = set()
        for who in (user, "*") if user else ("*",):
            for pattern, actions in (self.rules.get(who or "") or {}).items():
                if fnmatch.fnmatchcase(scope.name, pattern):
                    granted.update("pull" if a == "*" else a for a in actions)
                    if "*" in actions:
                        granted.update(("pull", "push", "delete", "*"))
        return tuple(a for a in scope.actions if a in granted)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    def __init__(self, service: str, key: bytes | None = None) -> None:
        self.service = service
        self.key = key or secrets.token_bytes(32)

    def issue(self, user: str | None, scopes: list[Scope]) -> str:
        now = int(time.time())
        claims = {"iss": "dockyard-registry", "sub": user or "", "aud": self.service, "iat": now,
                  "nbf": now - 5, "exp": now + TOKEN_TTL, "jti": secrets.token_hex(8),
                  "access": [{"type": s.type, "name": s.name, "actions": list(s.actions)} for s in scopes]}
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}"

    def verify(self, token: str) -> dict[str, Any] | None:
        try:
            head, body, sig = token.split(".")
            want = _b64(hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(sig, want):
                return None
            claims: dict[str, Any] = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        now = time.time()
        if claims.get("aud") != self.service or not claims.get("nbf", 0) <= now < claims.get("exp", 0):
            return None
        return claims


@dataclass
class Decision:
    ok: bool
    status: int = 200           # 401 (who are you?) or 403 (you may not)
    challenge: str = ""         # WWW-Authenticate value for a 401


class Auth:
    """What the registry app asks per request: may these headers do ``scope``?"""

    def __init__(self, mode: str = "none", htpasswd: Htpasswd | None = None, policy: Policy | None = None,
                 realm: str = "", service: str = "dockyard-registry", key: bytes | None = None) -> None:
        if mode not in ("none", "basic", "token"):
            raise InvalidArgument(f"unknown auth mode {mode!r}")
        if mode != "none" and htpasswd is None:
            raise InvalidArgument(f"{mode} auth needs an htpasswd file")
        self.mode = mode
        self.htpasswd = htpasswd
        self.policy = policy or Policy(None)
        self.realm = realm
        self.tokens = Tokens(service, key)

    def basic_user(self, header: str) -> str | None:
        if not header.lower().startswith("basic ") or self.htpasswd is None:
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if self.htpasswd.verify(user, password) else None

    def check(self, authorization: str, scope: Scope | None, realm: str = "") -> Decision:
        """``scope`` None is ``GET /v2/``: with auth on it only asks "who are you?" (``docker
        login`` relies on it to check a password)."""
        if self.mode == "none":
            return Decision(True)
        basic = f'Basic realm="{self.realm or "dockyard-registry"}"'
        if self.mode == "basic":
            user = self.basic_user(authorization)
            if scope is None:
                return Decision(True) if user else Decision(False, 401, basic)
            if self.policy.allowed(user, scope) == scope.actions:
                return Decision(True)
            return Decision(False, 403 if user else 401, basic)
        claims = self.tokens.verify(authorization[7:]) if authorization.lower().startswith("bearer ") else None
        challenge = f'Bearer realm="{self.realm or realm}",service="{self.tokens.service}"'
        if scope is None:
            return Decision(True) if claims is not None else Decision(False, 401, challenge)
        challenge += f',scope="{scope}"'
        if claims is None:
            if self.policy.allowed(None, scope) == scope.actions:
                return Decision(True)  # anonymous access the policy grants needs no token
            return Decision(False, 401, challenge)
        for grant in claims.get("access") or []:
            if grant.get("type") == scope.type and grant.get("name") == scope.name and \
                    set(scope.actions) <= set(grant.get("actions") or []):
                return Decision(True)
        return Decision(False, 403 if claims.get("sub") else 401, challenge)

    def token_response(self, authorization: str, scopes: list[str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: credentials (optional) in, a token for the granted subset out."""
        user = None
        if authorization:
            user = self.basic_user(authorization)
            if user is None:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]}
        granted = []
        for text in scopes:
            scope = Scope.parse(text)
            actions = self.policy.allowed(user, scope)
            if actions:
                granted.append(Scope(scope.type, scope.name, actions))
        token = self.tokens.issue(user, granted)
        return 200, {"token": token, "access_token": token, "expires_in": TOKEN_TTL,
                     "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def load_key(path: Path | None) -> bytes | None:
    """A token signing key shared by restarts/replicas (optional; random per start otherwise)."""
    if path is None:
        return None
    try:
        return path.read_bytes().strip() or None
    except OSError as exc:
        raise InvalidArgument(f"cannot read token key {path}: {exc.strerror}") from exc


def scope_for(method: str, path: str) -> Scope | None:
    """The scope a distribution-API request needs (None: ``/v2/`` itself, which only needs auth)."""
    parts = path.split("/")
    if path.startswith("/v1/search"):
        return Scope("registry", "catalog", ("*",))
    if len(parts) < 3 or parts[1] != "v2":
        return None
    if path.rstrip("/") == "/v2":
        return None
    if parts[2] == "_catalog":
        return Scope("registry", "catalog", ("*",))
    for marker in ("/manifests/", "/blobs/", "/tags/", "/referrers/"):
        if marker in path:
            name = path[len("/v2/"):path.index(marker)]
            if method in ("GET", "HEAD"):
                actions: tuple[str, ...] = ("pull",)
            elif method == "DELETE":
                actions = ("delete",)
            else:
                actions = ("pull", "push")
            return Scope("repository", name, actions)
    return None

