"""Typed-enough Docker Engine API client: one method per endpoint the CLI uses.

Methods return the decoded JSON (Docker's PascalCase shapes) or a streaming ``Response``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping

from dockyard.client.transport import Host, Response, Transport, host_from_env, quote

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any, BinaryIO

    from dockyard.client.buildcontext import ContextTar


def _filters(filters: Mapping[str, list[str]] | None) -> str | None:
    if not filters:
        return None
    return json.dumps({k: dict.fromkeys(v, True) for k, v in filters.items()})


class Client:
    def __init__(self, host: Host | None = None, timeout: float | None = None) -> None:
        self.host = host or host_from_env(None)
        self.t = Transport(self.host, timeout=timeout)

    # ------------------------------------------------------------ system
    def ping(self) -> str:
        return self.t.request("GET", "/_ping").read().decode()

    def version(self) -> dict[str, Any]:
        return self.t.request("GET", "/version").json()

    def info(self) -> dict[str, Any]:
        return self.t.request("GET", "/info").json()

    def events(self, since: str | None, until: str | None,
               filters: Mapping[str, list[str]] | None) -> Response:
        return self.t.request("GET", "/events",
                              {"since": since, "until": until, "filters": _filters(filters)})

    # ------------------------------------------------------------ containers
    def create_container(self, body: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
        return self.t.request("POST", "/containers/create", {"name": name or None},
                              body=body).json()

    def list_containers(self, all: bool = False, limit: int | None = None, size: bool = False,
                        filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        params = {"all": all or None, "limit": limit, "size": size or None, "filters": _filters(filters)}
        return self.t.request("GET", "/containers/json", params).json() or []

    def inspect_container(self, ref: str, size: bool = False) -> dict[str, Any]:
        return self.t.request("GET", f"/containers/{_q(ref)}/json",
                              {"size": size or None}).json()

    def start(self, ref: str, detach_keys: str | None = None) -> None:
        self.t.request("POST", f"/containers/{_q(ref)}/start", {"detachKeys": detach_keys}).read()

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        self.t.request("POST", f"/containers/{_q(ref)}/stop", {"t": timeout, "signal": signal}).read()

    def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        self.t.request("POST", f"/containers/{_q(ref)}/restart", {"t": timeout, "signal": signal}).read()

    def kill(self, ref: str, signal: str | None = None) -> None:
        self.t.request("POST", f"/containers/{_q(ref)}/kill", {"signal": signal}).read()

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self.t.request("DELETE", f"/containers/{_q(ref)}", {"force": force or None,
                                                            "v": volumes or None}).read()

    def wait_send(self, ref: str, condition: str | None = None) -> Any:
        """Send the wait request now; read it later with ``wait_result``."""
        conn, _ = self.t.send("POST", f"/containers/{_q(ref)}/wait", {"condition": condition})
        return conn

    def wait_result(self, conn: Any) -> tuple[int, str | None]:
        data = self.t.receive(conn).json() or {}
        err = data.get("Error")
        msg = err.get("Message") if isinstance(err, dict) else None
        return int(data.get("StatusCode", 0)), msg or None

    def wait(self, ref: str, condition: str | None = None) -> tuple[int, str | None]:
        return self.wait_result(self.wait_send(ref, condition))

    def logs(self, ref: str, params: Mapping[str, Any]) -> Response:
        return self.t.request("GET", f"/containers/{_q(ref)}/logs", params)

    def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool,
               detach_keys: str | None = None, logs: bool = False) -> tuple[socket.socket, bytes]:
        return self.t.hijack(f"/containers/{_q(ref)}/attach", {
            "stream": True, "stdin": stdin, "stdout": stdout, "stderr": stderr,
            "detachKeys": detach_keys, "logs": logs or None})

    def resize(self, ref: str, height: int, width: int) -> None:
        self.t.request("POST", f"/containers/{_q(ref)}/resize", {"h": height, "w": width}).read()

    def top(self, ref: str, ps_args: str | None = None) -> dict[str, Any]:
        return self.t.request("GET", f"/containers/{_q(ref)}/top",
                              {"ps_args": ps_args}).json()

    def stats(self, ref: str, stream: bool = True, one_shot: bool = False) -> Response:
        """GET /containers/{id}/stats: newline-delimited StatsResponse objects (one when not streaming)."""
        return self.t.request("GET", f"/containers/{_q(ref)}/stats",
                              {"stream": stream, "one-shot": one_shot or None})

    def rename(self, ref: str, name: str) -> None:
        self.t.request("POST", f"/containers/{_q(ref)}/rename", {"name": name}).read()

    def pause(self, ref: str) -> None:
        self.t.request("POST", f"/containers/{_q(ref)}/pause").read()

    def unpause(self, ref: str) -> None:
        self.t.request("POST", f"/containers/{_q(ref)}/unpause").read()

    def update(self, ref: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.t.request("POST", f"/containers/{_q(ref)}/update",
                              body=body).json() or {}

    def prune_containers(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        return self.t.request("POST", "/containers/prune",
                              {"filters": _filters(filters)}).json() or {}

    # ------------------------------------------------------------ exec
    def exec_create(self, ref: str, body: Mapping[str, Any]) -> str:
        return str(self.t.request("POST", f"/containers/{_q(ref)}/exec", body=body).json()["Id"])

    def exec_start_detached(self, exec_id: str, body: Mapping[str, Any]) -> None:
        self.t.request("POST", f"/exec/{_q(exec_id)}/start", body=body).read()

    def exec_start(self, exec_id: str, body: Mapping[str, Any]) -> tuple[socket.socket, bytes]:
        return self.t.hijack(f"/exec/{_q(exec_id)}/start", body=body)

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self.t.request("GET", f"/exec/{_q(exec_id)}/json").json()

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        self.t.request("POST", f"/exec/{_q(exec_id)}/resize", {"h": height, "w": width}).read()

    # ------------------------------------------------------------ images
    def list_images(self, all: bool = False, digests: bool = False,
                    filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        params = {"all": all or None, "digests": digests or None, "filters": _filters(filters)}
        return self.t.request("GET", "/images/json", params).json() or []

    def inspect_image(self, name: str) -> dict[str, Any]:
        return self.t.request("GET", f"/images/{_q(name)}/json").json()

    def history(self, name: str) -> list[dict[str, Any]]:
        return self.t.request("GET", f"/images/{_q(name)}/history").json() or []

    def tag(self, name: str, repo: str, tag: str | None) -> None:
        self.t.request("POST", f"/images/{_q(name)}/tag", {"repo": repo, "tag": tag}).read()

    def remove_image(self, name: str, force: bool = False, noprune: bool = False) -> list[dict[str, Any]]:
        return self.t.request("DELETE", f"/images/{_q(name)}",
                              {"force": force or None, "noprune": noprune or None}).json() or []

    def prune_images(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        return self.t.request("POST", "/images/prune",
                              {"filters": _filters(filters)}).json() or {}

    def load(self, src: BinaryIO | bytes, quiet: bool = False) -> Response:
        return self.t.request("POST", "/images/load", {"quiet": quiet}, body=src)

    def save(self, names: list[str]) -> Response:
        return self.t.request("GET", "/images/get", {"names": names})

    def pull(self, image: str, platform: str | None, headers: Mapping[str, str], all_tags: bool = False
             ) -> Response:
        """A bare name pulls ``latest``, as with the docker CLI; with ``all_tags`` it is sent bare,
        which makes the daemon pull every tag."""
        params: dict[str, Any] = {"fromImage": image, "platform": platform}
        if not all_tags and "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            params["tag"] = "latest"
        return self.t.request("POST", "/images/create", params, headers=headers)

    def push(self, name: str, tag: str | None, headers: Mapping[str, str]) -> Response:
        """``tag`` None pushes every local tag of ``name`` (``push -a``)."""
        return self.t.request("POST", f"/images/{_q(name)}/push", {"tag": tag}, headers=headers)

    def search(self, term: str, limit: int, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        return self.t.request("GET", "/images/search", {"term": term, "limit": limit}, headers=headers).json() or []

    def auth(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.t.request("POST", "/auth", body=body).json() or {}

    def disk_usage(self) -> dict[str, Any]:
        return self.t.request("GET", "/system/df").json() or {}

    def system_check(self, repair: bool) -> list[dict[str, Any]]:
        """dockyard's POST /system/check: the store's problems (repaired ones marked)."""
        body = self.t.request("POST", "/system/check", {"repair": "1" if repair else "0"}).json() or {}
        return list(body.get("Findings") or [])

    def build(self, context: BinaryIO | ContextTar, params: Mapping[str, Any]) -> Response:
        """POST /build with the context tar (a stream, sent chunked, or a planned ``ContextTar``,
        sent with its length); the response is Docker's JSON progress stream."""
        return self.t.request("POST", "/build", params, body=context)

    def prune_build_cache(self, all: bool, filters: Mapping[str, list[str]] | None) -> dict[str, Any]:
        return self.t.request("POST", "/build/prune", {"all": all or None,
                                                       "filters": _filters(filters)}).json() or {}

    def import_image(self, src: BinaryIO | bytes, repo: str | None, tag: str | None,
                     changes: list[str], message: str | None) -> Response:
        params = {"fromSrc": "-", "repo": repo, "tag": tag, "changes": changes or None,
                  "message": message or None}
        return self.t.request("POST", "/images/create", params, body=src)

    # ------------------------------------------------------------ networks
    def create_network(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.t.request("POST", "/networks/create", body=body).json() or {}

    def list_networks(self, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        return self.t.request("GET", "/networks", {"filters": _filters(filters)}).json() or []

    def inspect_network(self, ref: str, verbose: bool = False, scope: str | None = None) -> dict[str, Any]:
        return self.t.request("GET", f"/networks/{_q(ref)}",
                              {"verbose": verbose or None, "scope": scope or None}).json()

    def remove_network(self, ref: str) -> None:
        self.t.request("DELETE", f"/networks/{_q(ref)}").read()

    def connect_network(self, ref: str, body: Mapping[str, Any]) -> None:
        self.t.request("POST", f"/networks/{_q(ref)}/connect", body=body).read()

    def disconnect_network(self, ref: str, container: str, force: bool = False) -> None:
        self.t.request("POST", f"/networks/{_q(ref)}/disconnect",
                       body={"Container": container, "Force": force}).read()

    def prune_networks(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        return self.t.request("POST", "/networks/prune", {"filters": _filters(filters)}).json() or {}

    # ------------------------------------------------------------ commit / diff / export
    def commit(self, container: str, repo: str | None = None, tag: str | None = None,
               comment: str | None = None, author: str | None = None, pause: bool = True,
               changes: list[str] | None = None, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = {"container": container, "repo": repo or None, "tag": tag or None,
                  "comment": comment or None, "author": author or None, "pause": pause,
                  "changes": changes or None}
        return self.t.request("POST", "/commit", params, body=config).json()

    def changes(self, ref: str) -> list[dict[str, Any]]:
        return self.t.request("GET", f"/containers/{_q(ref)}/changes").json() or []

    def export(self, ref: str) -> Response:
        return self.t.request("GET", f"/containers/{_q(ref)}/export")

    # ------------------------------------------------------------ volumes
    @staticmethod
    def _go_filters(filters: Mapping[str, list[str]] | None) -> str | None:
        """Docker's filters argument byte for byte: compact JSON, keys and values sorted."""
        if not filters:
            return None
        return json.dumps({k: dict.fromkeys(sorted(filters[k]), True) for k in sorted(filters)},
                          separators=(",", ":"))

    def list_volumes(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        """GET /volumes: {"Volumes": [...], "Warnings": [...]}."""
        return self.t.request("GET", "/volumes", {"filters": self._go_filters(filters)}).json() or {}

    def create_volume(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.t.request("POST", "/volumes/create", body=body).json() or {}

    def inspect_volume(self, name: str) -> dict[str, Any]:
        return self.t.request("GET", f"/volumes/{_q(name)}").json()

    def remove_volume(self, name: str, force: bool = False) -> None:
        self.t.request("DELETE", f"/volumes/{_q(name)}", {"force": force or None}).read()

    def prune_volumes(self, filters: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        return self.t.request("POST", "/volumes/prune", {"filters": self._go_filters(filters)}).json() or {}

    # ------------------------------------------------------------ archive (cp)
    @staticmethod
    def _path_stat(resp: Response) -> dict[str, Any]:
        """The X-Docker-Container-Path-Stat header: {"name","size","mode" (Go FileMode),"mtime",
        "linkTarget"}."""
        import base64
        raw = resp.headers.get("x-docker-container-path-stat", "")
        return dict(json.loads(base64.b64decode(raw))) if raw else {}

    def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        resp = self.t.request("HEAD", f"/containers/{_q(ref)}/archive", {"path": path})
        resp.read()
        return self._path_stat(resp)

    def get_archive(self, ref: str, path: str) -> tuple[dict[str, Any], Response]:
        """The path's stat and the response streaming its tar."""
        resp = self.t.request("GET", f"/containers/{_q(ref)}/archive", {"path": path})
        return self._path_stat(resp), resp

    def put_archive(self, ref: str, path: str, tar: BinaryIO | bytes, no_overwrite_dir_non_dir: bool = True,
                    copy_uid_gid: bool = False) -> None:
        self.t.request("PUT", f"/containers/{_q(ref)}/archive",
                       {"path": path, "noOverwriteDirNonDir": no_overwrite_dir_non_dir or None,
                        "copyUIDGID": copy_uid_gid or None}, body=tar).read()


def _q(part: str) -> str:
    # keep ':' '/' '@' literal in paths (image references), as the docker CLI sends them
    return quote(part, safe=":/@")
