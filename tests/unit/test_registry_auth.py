"""Registry auth decisions: htpasswd (bcrypt), policies, tokens (signature, audience, expiry,
scopes), the scope each API request needs, and the token endpoint's grants."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.registry.auth import Auth, Htpasswd, Policy, Scope, Tokens, bcrypt_hash, scope_for


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def htpasswd(tmp_path: Path) -> Htpasswd:
    f = tmp_path / "htpasswd"
    f.write_text(f"alice:{bcrypt_hash('s3cret')}\nbob:{bcrypt_hash('hunter2')}\n")
    return Htpasswd(f)


def test_htpasswd(htpasswd: Htpasswd, tmp_path: Path) -> None:
    assert htpasswd.verify("alice", "s3cret") and not htpasswd.verify("alice", "nope")
    assert not htpasswd.verify("mallory", "s3cret")
    bad = tmp_path / "md5"
    bad.write_text("carol:$apr1$abc$def\n")
    with pytest.raises(InvalidArgument, match="only bcrypt"):
        Htpasswd(bad)


def test_scopes_of_requests() -> None:
    assert scope_for("GET", "/v2/") is None
    assert str(scope_for("GET", "/v2/team/app/manifests/1")) == "repository:team/app:pull"
    assert str(scope_for("PUT", "/v2/team/app/manifests/1")) == "repository:team/app:pull,push"
    assert str(scope_for("POST", "/v2/a/blobs/uploads/")) == "repository:a:pull,push"
    assert str(scope_for("DELETE", "/v2/a/blobs/sha256:00")) == "repository:a:delete"
    assert str(scope_for("GET", "/v2/_catalog")) == "registry:catalog:*"
    assert Scope.parse("repository:a/b:pull,push") == Scope("repository", "a/b", ("pull", "push"))


def test_basic_mode_and_policy(htpasswd: Htpasswd) -> None:
    policy = Policy({"alice": {"*": ["pull", "push"]}, "bob": {"team/*": ["pull"]}, "*": {"public/*": ["pull"]}})
    auth = Auth("basic", htpasswd, policy)
    push = Scope("repository", "team/app", ("pull", "push"))
    pull = Scope("repository", "team/app", ("pull",))
    assert auth.check(_basic("alice", "s3cret"), push).ok
    assert auth.check(_basic("bob", "hunter2"), pull).ok
    assert auth.check(_basic("bob", "hunter2"), push).status == 403
    denied = auth.check("", pull)
    assert denied.status == 401 and denied.challenge.startswith("Basic realm=")
    assert auth.check("", Scope("repository", "public/x", ("pull",))).ok
    assert auth.check(_basic("alice", "wrong"), None).status == 401  # GET /v2/ checks the password
    assert auth.check(_basic("alice", "s3cret"), None).ok


def test_tokens_sign_and_expire() -> None:
    tokens = Tokens("svc")
    token = tokens.issue("alice", [Scope("repository", "a", ("pull",))])
    claims = tokens.verify(token)
    assert claims is not None and claims["access"] == [{"type": "repository", "name": "a", "actions": ["pull"]}]
    assert Tokens("svc").verify(token) is None          # another key
    assert Tokens("other", tokens.key).verify(token) is None  # another audience
    head, body, sig = token.split(".")
    assert tokens.verify(f"{head}.{body}x.{sig}") is None


def test_token_mode_grants_only_what_the_policy_allows(htpasswd: Htpasswd) -> None:
    auth = Auth("token", htpasswd, Policy({"bob": {"team/*": ["pull"]}}), realm="http://127.0.0.1:1/token",
                service="svc")
    status, body = auth.token_response(_basic("bob", "hunter2"), ["repository:team/app:pull,push"])
    assert status == 200
    token = body["token"]
    assert auth.check(f"Bearer {token}", Scope("repository", "team/app", ("pull",))).ok
    refused = auth.check(f"Bearer {token}", Scope("repository", "team/app", ("pull", "push")))
    assert refused.status == 403
    challenge = auth.check("", Scope("repository", "team/app", ("pull",)))
    assert challenge.status == 401
    assert challenge.challenge == ('Bearer realm="http://127.0.0.1:1/token",service="svc",'
                                   'scope="repository:team/app:pull"')
    assert auth.token_response(_basic("bob", "wrong"), [])[0] == 401
