#!/usr/bin/env python3
"""Push and pull throughput on loopback: dockyard's engine and Docker's, against the same registry.

A ~200 MB image of four random (incompressible) layers on busybox is built with dockyard, loaded
into a private dockerd, and pushed to / pulled from a registry on 127.0.0.1 — Debian's
docker-registry (the CNCF distribution registry), and ``dockyard registry serve`` when this
checkout has it. Every push goes to a registry emptied before it (docker would otherwise mount the
layers from a repository it pushed before) and every pull starts with the image removed (both
untimed), so each run moves all four layers. Writes bench/results/share.md.

    .venv/bin/python bench/share_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import BIN, Cli, PrivateDockerd, Registries, interleave, seconds, summarize  # noqa: E402
from tests.conftest import LiveDaemon, start_daemon, stop_daemon  # noqa: E402

from dockyard.client.busybox import build_archive  # noqa: E402

LAYER_MB = 50
SIZE_MB = 4 * LAYER_MB
IMAGE = "bench/share"
DOCKERFILE = "".join(f"RUN head -c {LAYER_MB * 1000 * 1000} /dev/urandom > /blob{i}\n" for i in range(4))


def build_share_image(dockyard: Cli, base: Path) -> Path:
    """Build the ~200 MB image (busybox + four random layers) with dockyard and save it to a
    docker-archive, which the other engines load."""
    ctx = base / "share-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n" + DOCKERFILE)
    dockyard("build", "-q", "--network", "none", "-t", IMAGE, str(ctx), timeout=900)
    image_tar = base / "share-image.tar"
    dockyard("save", "-o", str(image_tar), IMAGE)
    return image_tar


class ShareCases:
    """One engine's push and pull cases against each registry, with their untimed preparations:
    a push of every layer to a registry that has none of them (``push_registries`` are emptied
    before each push), a pull of the whole image from ``pull_hosts`` into an engine that has none
    of it. Every case leaves the image tagged ``IMAGE`` again."""

    def __init__(self, cli: Cli, pull_hosts: dict[str, str], push_registries: Registries) -> None:
        self.cli = cli
        self.hosts = pull_hosts
        self.pushed: list[str] = []  # tags made for pushes, removed before the image is
        self.cases: dict[str, Callable[[], object]] = {}
        self.prepare: dict[str, Callable[[], object]] = {}
        for label, host in pull_hosts.items():
            ref = f"{host}/pull/share:1"
            if not push_registries.hosts.get(label):
                continue
            self.cases[f"push → {label}"] = self.push
            self.prepare[f"push → {label}"] = partial(self.fresh_push, push_registries, label)
            self.cases[f"pull ← {label}"] = partial(self.pull, ref)
            self.prepare[f"pull ← {label}"] = self.remove_image

    @staticmethod
    def seed(cli: Cli, pull_hosts: dict[str, str]) -> None:
        """Push the image every pull case fetches (once per registry, by any engine)."""
        for host in pull_hosts.values():
            ref = f"{host}/pull/share:1"
            cli("tag", IMAGE, ref)
            cli("push", *cli.registry_flags, ref)
            cli.quiet("rmi", ref)

    def fresh_push(self, registries: Registries, label: str) -> None:
        registries.reset(label)
        self.tag_fresh(registries.hosts[label])

    def tag_fresh(self, host: str) -> None:
        self.untag_pushed()
        self.pushed.append(f"{host}/p{uuid.uuid4().hex[:8]}/share:1")
        self.cli("tag", IMAGE, self.pushed[-1])

    def push(self) -> None:
        self.cli("push", *self.cli.registry_flags, self.pushed[-1])

    def pull(self, ref: str) -> None:
        self.cli("pull", *self.cli.registry_flags, ref)
        self.cli("tag", ref, IMAGE)

    def untag_pushed(self) -> None:
        if self.pushed:
            self.cli.quiet("rmi", *self.pushed)
            self.pushed.clear()

    def remove_image(self) -> None:
        """Nothing of the image may stay local, or a pull's or load's layers "Already exist"."""
        self.untag_pushed()
        self.cli.quiet("rmi", "-f", IMAGE, *[f"{h}/pull/share:1" for h in self.hosts.values()])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dybench-share-"))
    archive = base / "busybox.tar"
    archive.write_bytes(build_archive(tag="busybox:latest"))
    daemon: LiveDaemon = start_daemon(base / "dockyardd")
    dockerd: PrivateDockerd | None = None
    registries = Registries(base / "pull")
    push_registries = Registries(base / "push")
    samples: dict[str, list[float]] = {}
    try:
        hosts = registries.start()
        push_registries.start()
        dockyard = Cli("dockyard", [str(BIN / "dockyard"), "-H", daemon.host])
        dockyard("load", "-i", str(archive))
        image_tar = build_share_image(dockyard, base)
        clis = [dockyard]
        if shutil.which("dockerd") and shutil.which("docker"):
            dockerd = PrivateDockerd(base / "dockerd")
            if dockerd.start():
                docker = Cli("docker", ["docker"], dockerd.env)
                docker("load", "-i", str(image_tar))
                clis.append(docker)
        cases: dict[str, Callable[[], object]] = {}
        prepare: dict[str, Callable[[], object]] = {}
        ShareCases.seed(dockyard, hosts)
        for cli in clis:
            sc = ShareCases(cli, hosts, push_registries)
            cases.update({f"{cli.name} {k}": v for k, v in sc.cases.items()})
            prepare.update({f"{cli.name} {k}": v for k, v in sc.prepare.items()})
        samples = interleave(cases, args.runs, warmup=False, measure=seconds, prepare=prepare)
    finally:
        stop_daemon(daemon)
        if dockerd is not None:
            dockerd.stop()
        registries.stop()
        push_registries.stop()
        shutil.rmtree(base, ignore_errors=True)
    lines = [f"# Push and pull on loopback ({args.runs} runs each, interleaved)", "",
             f"Machine: {os.uname().release}, {os.cpu_count()} CPUs. Image: busybox + 4 × {LAYER_MB} MB "
             "random layers (uncompressed in dockyard's store; Docker gzips on push).", "",
             "| case | median s | MB/s (median) |", "|---|---:|---:|"]
    for name, s in samples.items():
        st = summarize(s)
        lines.append(f"| {name} | {st['median']:.2f} | {SIZE_MB / st['median']:.0f} |")
    text = "\n".join(lines) + "\n"
    out = HERE / "results" / "share.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
