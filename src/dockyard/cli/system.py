"""``dockyard system df``: Docker's disk-usage summary (and ``-v``, ``--format``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dockyard.cli import formatting as fmt
from dockyard.client.api import Client

_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
            "Reclaimable": "RECLAIMABLE"}


def _reclaimable(size: int, total: int) -> str:
    if total <= 0:
        return fmt.human_size(size)
    return f"{fmt.human_size(size)} ({int(size * 100 / total)}%)"


def summary_rows(du: dict[str, Any]) -> list[dict[str, Any]]:
    images = du.get("Images") or []
    containers = du.get("Containers") or []
    volumes = du.get("Volumes") or []
    cache = du.get("BuildCache") or []
    layers = int(du.get("LayersSize") or 0)
    active_images = [i for i in images if int(i.get("Containers") or 0) > 0]
    used = sum(int(i.get("Size") or 0) for i in active_images)
    rows = [{"Type": "Images", "TotalCount": str(len(images)), "Active": str(len(active_images)),
             "Size": fmt.human_size(layers), "Reclaimable": _reclaimable(max(layers - used, 0), layers)}]
    running = [c for c in containers if c.get("State") in ("running", "paused", "restarting")]
    csize = sum(int(c.get("SizeRw") or 0) for c in containers)
    creclaim = sum(int(c.get("SizeRw") or 0) for c in containers if c not in running)
    rows.append({"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(running)),
                 "Size": fmt.human_size(csize), "Reclaimable": _reclaimable(creclaim, csize)})
    vsize = sum(int((v.get("UsageData") or {}).get("Size") or 0) for v in volumes)
    rows.append({"Type": "Local Volumes", "TotalCount": str(len(volumes)), "Active": "0",
                 "Size": fmt.human_size(vsize), "Reclaimable": _reclaimable(vsize, vsize)})
    bsize = sum(int(b.get("Size") or 0) for b in cache)
    breclaim = sum(int(b.get("Size") or 0) for b in cache if not b.get("InUse"))
    rows.append({"Type": "Build Cache", "TotalCount": str(len(cache)),
                 "Active": str(sum(1 for b in cache if b.get("InUse"))),
                 "Size": fmt.human_size(bsize), "Reclaimable": fmt.human_size(breclaim)})
    return rows


def cmd_df(c: Client, a: argparse.Namespace) -> int:
    du = c.disk_usage()
    if a.format and a.format not in ("table",):
        sys.stdout.write(fmt.render_list(a.format, summary_rows(du), _HEADERS))
        return 0
    if not a.verbose:
        sys.stdout.write(fmt.render_list("table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t"
                                         "{{.Reclaimable}}", summary_rows(du), _HEADERS))
        return 0
    out = ["Images space usage:", ""]
    rows = [{"Repository": (i.get("RepoTags") or ["<none>:<none>"])[0].rsplit(":", 1)[0],
             "Tag": (i.get("RepoTags") or ["<none>:<none>"])[0].rsplit(":", 1)[-1],
             "ID": str(i.get("Id", "")).split(":")[-1][:12], "Size": fmt.human_size(int(i.get("Size") or 0)),
             "Containers": str(i.get("Containers") or 0)} for i in du.get("Images") or []]
    out.append(fmt.render_list("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}\t{{.Containers}}", rows,
                               {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Size": "SIZE",
                                "Containers": "CONTAINERS"}).rstrip("\n"))
    out += ["", "Containers space usage:", ""]
    crows = [{"ID": str(x.get("Id", ""))[:12], "Image": x.get("Image", ""), "Names": (x.get("Names") or [""])[0]
              .lstrip("/"), "Size": fmt.human_size(int(x.get("SizeRw") or 0)), "Status": x.get("Status", "")}
             for x in du.get("Containers") or []]
    out.append(fmt.render_list("table {{.ID}}\t{{.Image}}\t{{.Size}}\t{{.Status}}\t{{.Names}}", crows,
                               {"ID": "CONTAINER ID", "Image": "IMAGE", "Size": "SIZE", "Status": "STATUS",
                                "Names": "NAMES"}).rstrip("\n"))
    out += ["", "Local Volumes space usage:", "", "VOLUME NAME   LINKS     SIZE", ""]
    cache = du.get("BuildCache") or []
    out.append(f"Build cache usage: {fmt.human_size(sum(int(b.get('Size') or 0) for b in cache))}")
    out.append("")
    brows = [{"ID": b.get("ID", ""), "Type": b.get("Type", ""), "Size": fmt.human_size(int(b.get("Size") or 0)),
              "Shared": str(bool(b.get("Shared"))).lower(), "InUse": str(bool(b.get("InUse"))).lower(),
              "Description": str(b.get("Description", ""))[:60]} for b in cache]
    out.append(fmt.render_list("table {{.ID}}\t{{.Type}}\t{{.Size}}\t{{.InUse}}\t{{.Shared}}\t{{.Description}}",
                               brows, {"ID": "CACHE ID", "Type": "CACHE TYPE", "Size": "SIZE",
                                       "InUse": "IN USE", "Shared": "SHARED",
                                       "Description": "DESCRIPTION"}).rstrip("\n"))
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def add_df_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--format")
    p.set_defaults(fn=lambda c, a: cmd_df(c, a))
