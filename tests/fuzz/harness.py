"""The fuzz harness: a live daemon with a fixed set of objects, and one ``send`` that makes a
request and checks the three properties of issue 8:

- no response is a 5xx (every bad input is a 4xx naming what is wrong);
- the daemon still answers ``/_ping`` afterwards;
- a rejected request (3xx/4xx) changes no state: the snapshot after it equals the one before.

The snapshot is what a client or the host could notice: the containers, images, networks and
volumes listings (and inspect of each object), the files under the data root (sizes and mtimes;
the SQLite files, container logs, the event journal and overlayfs work dirs excepted, as they
are written by requests that are not state changes), the mounts, network interfaces and nftables rules of the
daemon, and the cgroup limits of the running fixture container.

After a request that succeeded, the world is put back to the fixture set (anything the request
created is removed, a fixture it removed or changed is made again), so every example starts
from the same state and the suite never runs a container a fuzzed request configured.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.conftest import LiveDaemon
from tests.fuzz.unixhttp import BASE_URL, unix_session

RUN, IDLE, NET, VOL, IMG = "fz-run", "fz-idle", "fz-net", "fz-vol", "fz-img:latest"
BASE_IMAGE = "busybox:latest"
RUN_CMD = ["sh", "-c", 'trap "exit 0" TERM INT; while :; do sleep 1 & wait $!; done']
PREDEFINED_NETWORKS = {"bridge", "host", "none"}

# requests whose response body may never end (subscriptions, hijacked streams): read what comes
# within a short window and hang up; a status line must still come at once
STREAMING = {("GET", "/events"), ("GET", "/containers/{id}/logs"), ("GET", "/containers/{id}/stats"),
             ("POST", "/containers/{id}/attach"), ("POST", "/containers/{id}/wait"),
             ("POST", "/exec/{id}/start")}
# requests that talk to a registry: the daemon's default registry is a closed port on loopback,
# and its network namespace has nothing else, so these answer 503 (a dependency is down)
REGISTRY = {("GET", "/images/search"), ("GET", "/distribution/{name}/json"), ("POST", "/auth"),
            ("POST", "/images/create"), ("POST", "/images/{name}/push")}
_STREAM_WINDOW = 5.0
_TIMEOUT = 60.0
_SKIP_FILES = {"metadata.db", "metadata.db-wal", "metadata.db-shm", "metadata.db-journal", "dockyardd.lock"}
_CGROUP_FILES = ("memory/memory.limit_in_bytes", "memory/memory.soft_limit_in_bytes", "cpu/cpu.shares",
                 "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us", "pids/pids.max", "cpuset/cpuset.cpus",
                 "blkio/blkio.weight", "memory.max", "cpu.max", "cpu.weight", "pids.max")


class FuzzFailure(AssertionError):
    pass


@dataclass
class Stats:
    requests: int = 0
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    restores: int = 0

    def summary(self) -> str:
        by_class = Counter(f"{s // 100}xx" for s in self.statuses.elements())
        return (f"fuzz: {self.examples} examples, {self.requests} fuzzed requests "
                f"({', '.join(f'{k}: {v}' for k, v in sorted(by_class.items()))}), "
                f"{len(self.failures)} failures, {self.restores} fixture restores")


@dataclass
class Outcome:
    status: int
    body: bytes
    cut: bool = False  # a streaming body we stopped reading


def _diff(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after), key=str):
            if key not in after:
                out.append(f"{path}/{key}: removed")
            elif key not in before:
                out.append(f"{path}/{key}: added {after[key]!r:.200}")
            else:
                out += _diff(before[key], after[key], f"{path}/{key}")
        return out
    if before != after:
        return [f"{path}: {before!r:.300} -> {after!r:.300}"]
    return []


class Fuzzer:
    def __init__(self, daemon: LiveDaemon, stats: Stats) -> None:
        self.d = daemon
        self.stats = stats
        self.session = unix_session(str(daemon.sock))
        self.exec_id = ""
        self.signatures: dict[str, Any] = {}
        self.baseline: dict[str, Any] = {}

    # ------------------------------------------------------------------ plain API calls (not fuzzed)

    def api(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.session.request(method, BASE_URL + path, params=params or None,
                                    json=body, timeout=_TIMEOUT)

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = self.api(method, path, body, **params)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content and resp.headers.get("Content-Type", "").startswith(
            "application/json") else None

    def alive(self) -> bool:
        try:
            return self.session.get(BASE_URL + "/_ping", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    # ------------------------------------------------------------------ fixtures

    def setup(self) -> None:
        self.d.cli("bootstrap", "busybox", timeout=120)
        self.restore(force=True)

    def _create_run(self) -> None:
        self.ok("POST", "/containers/create", {"Image": BASE_IMAGE, "Cmd": RUN_CMD}, name=RUN)
        self.ok("POST", f"/containers/{RUN}/start")

    def _signature(self, name: str) -> Any:
        resp = self.api("GET", f"/containers/{name}/json")
        if resp.status_code != 200:
            return None
        c = resp.json()
        return {"Name": c["Name"], "Config": c["Config"], "HostConfig": c["HostConfig"],
                "Status": c["State"]["Status"], "Paused": c["State"]["Paused"],
                "Networks": sorted(c["NetworkSettings"]["Networks"] or {}), "Mounts": c["Mounts"]}

    def _stopped_by_signal(self) -> bool:
        pid = self.api("GET", f"/containers/{RUN}/json").json()["State"]["Pid"]
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
        except (OSError, IndexError):
            return False

    def restore(self, force: bool = False) -> bool:
        """Put the world back to the fixture set; True when anything had to change."""
        changed = False
        for c in self.ok("GET", "/containers/json", all="1"):
            names = [n.lstrip("/") for n in c["Names"]]
            if not {RUN, IDLE} & set(names):
                self.api("DELETE", f"/containers/{c['Id']}", force="1", v="1")
                changed = True
        for name, make in ((RUN, self._create_run),
                           (IDLE, lambda: self.ok("POST", "/containers/create",
                                                  {"Image": BASE_IMAGE, "Cmd": ["true"]}, name=IDLE))):
            sig = self._signature(name)
            if force or sig is None or sig != self.signatures.get(name):
                if sig is not None:
                    self.api("DELETE", f"/containers/{name}", force="1", v="1")
                if not force:
                    changed = True
                make()
                self.signatures[name] = self._signature(name)
        if self._stopped_by_signal():
            self.ok("POST", f"/containers/{RUN}/kill", signal="CONT")
            changed = True
        for n in self.ok("GET", "/networks"):
            if n["Name"] not in PREDEFINED_NETWORKS | {NET}:
                for cid in n.get("Containers") or {}:
                    self.api("POST", f"/networks/{n['Id']}/disconnect", {"Container": cid, "Force": True})
                self.api("DELETE", f"/networks/{n['Id']}")
                changed = True
        if self.api("GET", f"/networks/{NET}").status_code != 200:
            self.ok("POST", "/networks/create", {"Name": NET, "Driver": "bridge"})
            changed = True
        for v in self.ok("GET", "/volumes")["Volumes"] or []:
            if v["Name"] != VOL:
                self.api("DELETE", f"/volumes/{v['Name']}", force="1")
                changed = True
        if self.api("GET", f"/volumes/{VOL}").status_code != 200:
            self.ok("POST", "/volumes/create", {"Name": VOL})
            changed = True
        changed |= self._restore_images()
        exec_ok = False
        if self.exec_id:
            resp = self.api("GET", f"/exec/{self.exec_id}/json")
            info = resp.json() if resp.status_code == 200 else {}
            exec_ok = (bool(info) and not info["Running"] and info["ExitCode"] is None
                       and info["ContainerID"] == self.signatures_id(RUN))
        if not exec_ok:
            self.exec_id = self.ok("POST", f"/containers/{RUN}/exec", {"Cmd": ["true"]})["Id"]
            changed = True
        if changed or force:
            self.stats.restores += 1
        return changed

    def signatures_id(self, name: str) -> str:
        resp = self.api("GET", f"/containers/{name}/json")
        return str(resp.json()["Id"]) if resp.status_code == 200 else ""

    def _restore_images(self) -> bool:
        changed = False
        if self.api("GET", f"/images/{BASE_IMAGE}/json").status_code != 200:
            self.d.cli("bootstrap", "busybox", timeout=120)
            changed = True
        base_id = self.ok("GET", f"/images/{BASE_IMAGE}/json")["Id"]
        for img in self.ok("GET", "/images/json", all="1"):
            if img["Id"] != base_id:
                self.api("DELETE", f"/images/{img['Id']}", force="1")
                changed = True
                continue
            for tag in img.get("RepoTags") or []:
                if tag not in (BASE_IMAGE, IMG):
                    self.api("DELETE", f"/images/{tag}")
                    changed = True
        if self.api("GET", f"/images/{IMG}/json").status_code != 200:
            self.ok("POST", f"/images/{BASE_IMAGE}/tag", repo=IMG.split(":")[0], tag="latest")
            changed = True
        return changed

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        s: dict[str, Any] = {}
        containers = self.ok("GET", "/containers/json", all="1")
        s["containers"] = {}
        for c in containers:
            full = self.api("GET", f"/containers/{c['Id']}/json").json()
            st = full["State"]
            s["containers"][c["Id"]] = {
                "Names": c["Names"], "Image": c["Image"], "Name": full["Name"], "Config": full["Config"],
                "HostConfig": full["HostConfig"], "Mounts": full["Mounts"], "ExecIDs": full["ExecIDs"],
                "RestartCount": full["RestartCount"],
                "State": {k: st[k] for k in ("Status", "Running", "Paused", "Pid", "ExitCode")},
                "Networks": full["NetworkSettings"]["Networks"],
            }
        s["images"] = sorted((i["Id"], sorted(i.get("RepoTags") or []), sorted(i.get("RepoDigests") or []))
                             for i in self.ok("GET", "/images/json", all="1"))
        s["networks"] = {n["Id"]: self.api("GET", f"/networks/{n['Id']}").json()
                         for n in self.ok("GET", "/networks")}
        s["volumes"] = {v["Name"]: v for v in self.ok("GET", "/volumes")["Volumes"] or []}
        if self.exec_id:
            resp = self.api("GET", f"/exec/{self.exec_id}/json")
            s["exec"] = resp.json() if resp.status_code == 200 else resp.status_code
        s["files"] = self._files()
        s["host"] = self._host(next((cid for cid, c in s["containers"].items() if c["Name"] == "/" + RUN), ""))
        return s

    def _mountpoints(self) -> list[str]:
        with open(f"/proc/{self.d.proc.pid}/mountinfo") as f:
            points = [line.split()[4] for line in f]
        roots = (str(self.d.data_root), str(self.d.exec_root))
        return sorted(p for p in points if p.startswith(roots))

    def _files(self) -> dict[str, Any]:
        mounts = set(self._mountpoints())
        out: dict[str, Any] = {}
        root = self.d.data_root
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            if rel == "events" or rel.startswith("events/"):
                dirnames[:] = []
                continue
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in mounts]
            if os.path.basename(dirpath) == "work" and rel.startswith("snapshots/"):
                # overlayfs's workdir: the kernel makes work/work on the first mount of a layer
                # (e.g. reading a created container's files), no request's doing
                dirnames[:] = []
                continue
            for name in dirnames:
                out[os.path.join(rel, name)] = "dir"
            for name in filenames:
                if name in _SKIP_FILES or name.endswith("-json.log"):
                    continue
                try:
                    info = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                kind = "link" if stat.S_ISLNK(info.st_mode) else "file"
                out[os.path.join(rel, name)] = (kind, info.st_size, info.st_mtime_ns, stat.S_IMODE(info.st_mode))
        return out

    def _host(self, run_id: str) -> dict[str, Any]:
        pid = self.d.proc.pid
        with open(f"/proc/{pid}/net/dev") as f:
            links = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
        nft = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "nft", "list", "ruleset"],
                             capture_output=True, text=True, timeout=30).stdout
        out: dict[str, Any] = {"mounts": self._mountpoints(), "links": links, "nft": nft}
        if run_id:
            limits = {}
            for rel in _CGROUP_FILES:
                for base in (Path("/sys/fs/cgroup") / rel.split("/")[0] / "dockyard" / run_id / rel.split("/")[-1],
                             Path("/sys/fs/cgroup/dockyard") / run_id / rel):
                    try:
                        limits[rel] = base.read_text().strip()
                    except OSError:
                        pass
            out["cgroup"] = limits
        return out

    def settle(self) -> dict[str, Any]:
        """A snapshot once the state stops moving (after a request that changed something)."""
        last = self.snapshot()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.snapshot()
            if now == last:
                return now
            last = now
        return last

    # ------------------------------------------------------------------ the fuzzed request

    def send(self, op: tuple[str, str], method: str, url: str, **kwargs: Any) -> Outcome:
        """Make one fuzzed request (``url`` relative to the API root, already encoded) and check it."""
        streaming = op in STREAMING
        kwargs.pop("timeout", None)
        kwargs.pop("stream", None)
        if "json" in kwargs:  # encoded here: NaN and ±Infinity go out as the non-JSON tokens
            # Python writes (requests refuses them), which the daemon must refuse too
            kwargs["data"] = json.dumps(kwargs.pop("json"), allow_nan=True).encode()
            kwargs["headers"] = {"Content-Type": "application/json", **(kwargs.get("headers") or {})}
        label = f"{method} {url}"
        try:
            resp = self.session.request(method, BASE_URL + url, stream=True, allow_redirects=False,
                                        timeout=(10, _STREAM_WINDOW if streaming else _TIMEOUT), **kwargs)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
            return Outcome(0, b"")  # the client library refused to send it: nothing reached the daemon
        except requests.RequestException as exc:
            return self._fail(label, f"no response: {exc!r}", None)
        self.stats.requests += 1
        outcome = self._read(resp, streaming)
        self.stats.statuses[outcome.status] += 1
        return self.check(label, outcome, registry=op in REGISTRY)

    def raw(self, label: str, request: bytes, streaming: bool = False) -> Outcome:
        """Send bytes as they are (paths requests would normalise, bodies that lie about their size)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(_STREAM_WINDOW if streaming else _TIMEOUT)
            sock.connect(str(self.d.sock))
            sock.sendall(request)
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except TimeoutError:
                pass
        self.stats.requests += 1
        try:
            status = int(data.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return self._fail(label, f"no HTTP response: {data[:200]!r}", None)
        self.stats.statuses[status] += 1
        return self.check(label, Outcome(status, data.partition(b"\r\n\r\n")[2]))

    def _read(self, resp: requests.Response, streaming: bool) -> Outcome:
        body = b""
        cut = False
        deadline = time.monotonic() + (_STREAM_WINDOW if streaming else _TIMEOUT)
        try:
            for chunk in resp.raw.stream(65536, decode_content=False):
                body += chunk[: max(0, (1 << 20) - len(body))]
                if time.monotonic() > deadline:
                    cut = True
                    break
        except Exception:  # a read timeout on a subscription: the body is still open
            cut = True
        finally:
            resp.close()
        if cut and not streaming:
            raise FuzzFailure(f"{resp.request.method} {resp.request.url}: the response did not end "
                              f"within {_TIMEOUT}s")
        return Outcome(resp.status_code, body, cut)

    def check(self, label: str, outcome: Outcome, registry: bool = False) -> Outcome:
        self.stats.examples += 1
        if outcome.status >= 500 and not (registry and outcome.status == 503):
            return self._fail(label, f"status {outcome.status}: {outcome.body[:500]!r}", outcome)
        if not self.alive():
            return self._fail(label, "the daemon no longer answers /_ping", outcome)
        if outcome.status >= 300:
            after = self.snapshot()
            changes = _diff(self.baseline, after)
            if changes:
                self.baseline = after
                self.restore()
                self.baseline = self.settle()
                return self._fail(label, f"rejected with {outcome.status} ({outcome.body[:300]!r}) but "
                                  f"changed state:\n  " + "\n  ".join(changes[:20]), outcome)
            return outcome
        if label.split(" ", 1)[0] in ("GET", "HEAD"):
            after = self.snapshot()
            if after != self.baseline:
                self.restore()
                after = self.settle()
            self.baseline = after
            return outcome
        self.restore()
        self.baseline = self.settle()
        return outcome

    def _fail(self, label: str, what: str, outcome: Outcome | None) -> Outcome:
        message = f"{label[:200]}: {what}"
        if message not in self.stats.failures:  # hypothesis replays a failing example while shrinking
            self.stats.failures.append(message)
        raise FuzzFailure(message)


def decode_message(outcome: Outcome) -> str:
    try:
        return str(json.loads(outcome.body).get("message", ""))
    except (ValueError, AttributeError):
        return outcome.body[:200].decode(errors="replace")
