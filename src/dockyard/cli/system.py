"""``system df`` (summary, ``-v``, ``--format``) and ``system prune``, printed as docker 28 prints them."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from dockyard.cli import formatting as fmt
from dockyard.cli.containers import PsRow, confirm
from dockyard.cli.gotemplate import Template, expand_escapes
from dockyard.cli.images import ImageRow
from dockyard.cli.netopts import natural_sorted
from dockyard.cli.networks import go_time_string
from dockyard.cli.volumes import VolumeRow, human_size, parse_filter_flag, prune_report
from dockyard.client.api import Client

# ---------------------------------------------------------------- summary

_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
            "Reclaimable": "RECLAIMABLE"}


def _share(part: int, total: int) -> str:
    """"1.2MB (45%)" with Go's integer division (truncating toward zero)."""
    if total <= 0:
        return human_size(part)
    pct = abs(part) * 100 // total
    return f"{human_size(part)} ({-pct if part < 0 else pct}%)"


class SummaryRow:
    def __init__(self, kind: str, total: int, active: int, size: str, reclaimable: str) -> None:
        self.Type, self.TotalCount, self.Active = kind, str(total), str(active)
        self.Size, self.Reclaimable = size, reclaimable

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in sorted(_HEADERS)}


def _int(value: Any) -> int:
    return int(value or 0)


def summary_rows(du: dict[str, Any]) -> list[SummaryRow]:
    images = du.get("Images") or []
    layers = _int(du.get("LayersSize"))
    used = sum(_int(i.get("Size")) - _int(i.get("SharedSize")) for i in images
               if _int(i.get("Containers")) != 0 and -1 not in (_int(i.get("Size")), _int(i.get("SharedSize"))))
    rows = [SummaryRow("Images", len(images), sum(1 for i in images if _int(i.get("Containers")) > 0),
                       human_size(layers), _share(layers - used, layers))]
    containers = du.get("Containers") or []
    active = [c for c in containers if c.get("State") in ("running", "paused", "restarting")]
    csize = sum(_int(c.get("SizeRw")) for c in containers)
    idle = sum(_int(c.get("SizeRw")) for c in containers if c not in active)
    rows.append(SummaryRow("Containers", len(containers), len(active), human_size(csize), _share(idle, csize)))
    volumes = du.get("Volumes") or []
    usage = [v.get("UsageData") or {} for v in volumes]
    sized = [u for u in usage if _int(u.get("Size")) != -1]
    vsize = sum(_int(u.get("Size")) for u in sized)
    vfree = sum(_int(u.get("Size")) for u in sized if _int(u.get("RefCount")) == 0)
    rows.append(SummaryRow("Local Volumes", len(volumes), sum(1 for u in usage if _int(u.get("RefCount")) > 0),
                           human_size(vsize), _share(vfree, vsize)))
    cache = du.get("BuildCache") or []
    bsize = sum(_int(b.get("Size")) for b in cache if not b.get("Shared"))
    busy = sum(_int(b.get("Size")) for b in cache if b.get("InUse") and not b.get("Shared"))
    rows.append(SummaryRow("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")),
                           human_size(bsize), human_size(bsize - busy)))
    return rows


# ---------------------------------------------------------------- -v: the per-object rows


def truncate_id(ident: str) -> str:
    """stringid.TruncateID: drop an "algo:" prefix, keep 12 characters."""
    return ident.partition(":")[2][:12] if ":" in ident else ident[:12]


_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


def split_reference(ref: str) -> tuple[str, str | None] | None:
    """(familiar name, tag or None) of an image reference, None when it does not parse."""
    name = ref.partition("@")[0]
    tag = None
    slash = name.rfind("/")
    if ":" in name[slash + 1:]:
        name, _, tag = name.rpartition(":")
        if not _TAG.fullmatch(tag):
            return None
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"
                           or parts[0] != parts[0].lower()):
        domain, path = parts[0], parts[1:]
    else:
        domain, path = "docker.io", parts
    if not path or not all(_COMPONENT.fullmatch(p) for p in path):
        return None
    if domain in ("docker.io", "index.docker.io"):
        domain = ""
        if len(path) == 2 and path[0] == "library":
            path = path[1:]
    return "/".join([domain, *path] if domain else path), tag


class DuImageRow(ImageRow):
    @property
    def SharedSize(self) -> str:
        shared = _int(self.img.get("SharedSize"))
        return "N/A" if shared == -1 else human_size(shared)

    @property
    def UniqueSize(self) -> str:
        size, shared = _int(self.img.get("Size")), _int(self.img.get("SharedSize"))
        return "N/A" if -1 in (size, shared) else human_size(size - shared)

    @property
    def VirtualSize(self) -> str:
        return human_size(_int(self.img.get("Size")))

    def to_json(self) -> dict[str, str]:
        keys = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize", "Size",
                "Tag", "UniqueSize", "VirtualSize")
        return {k: getattr(self, k) for k in keys}


def du_image_rows(images: list[dict[str, Any]], trunc: bool) -> list[DuImageRow]:
    rows = []
    for img in images:
        tags, digests = img.get("RepoTags") or [], img.get("RepoDigests") or []
        dangling = (not tags and not digests) or (tags == ["<none>:<none>"] and digests == ["<none>@<none>"])
        repo = tag = "<none>"
        if tags and not dangling:
            parsed = split_reference(tags[0])
            if parsed is None:
                continue  # docker leaves out an image whose first tag does not parse
            if parsed[1] is not None:
                repo, tag = parsed[0], parsed[1]
        rows.append(DuImageRow(img, repo, tag, "", trunc))
    return rows


class DuContainerRow(PsRow):
    @property
    def Image(self) -> str:
        image = str(self.c.get("Image") or "")
        if not image:
            return "<no image>"
        if self.trunc:
            if truncate_id(str(self.c.get("ImageID") or "")) == truncate_id(image):
                return truncate_id(image)
            parsed = split_reference(image)
            if parsed is not None:
                return parsed[0] + (f":{parsed[1]}" if parsed[1] is not None else "")
        return image

    @property
    def Size(self) -> str:
        return fmt.human_size(_int(self.c.get("SizeRw")))  # the virtual size is not shown here

    def to_json(self) -> dict[str, Any]:
        return dict(sorted({**super().to_json(), "Platform": None}.items()))


_CACHE_HEADERS = {"ID": "CACHE ID", "Parent": "PARENT", "CacheType": "CACHE TYPE", "Size": "SIZE",
                  "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE",
                  "InUse": "IN USE", "Shared": "SHARED", "Description": "DESCRIPTION"}


class BuildCacheRow:
    def __init__(self, b: dict[str, Any], trunc: bool) -> None:
        self.b, self.trunc = b, trunc

    @property
    def ID(self) -> str:
        ident = str(self.b.get("ID", ""))
        return (truncate_id(ident) if self.trunc else ident) + ("*" if self.b.get("InUse") else "")

    @property
    def Parent(self) -> str:
        parent = ", ".join(self.b.get("Parents") or []) or str(self.b.get("Parent") or "")
        return truncate_id(parent) if self.trunc else parent

    @property
    def CacheType(self) -> str:
        return str(self.b.get("Type", ""))

    @property
    def Description(self) -> str:
        return str(self.b.get("Description", ""))

    @property
    def Size(self) -> str:
        return fmt.human_size(_int(self.b.get("Size")))

    @property
    def CreatedAt(self) -> str:
        return go_time_string(str(self.b.get("CreatedAt") or ""))

    @property
    def CreatedSince(self) -> str:
        return fmt.since(fmt.parse_go_time(str(self.b.get("CreatedAt") or "0001-01-01T00:00:00Z")))

    @property
    def LastUsedAt(self) -> str:
        used = self.b.get("LastUsedAt")
        return go_time_string(str(used)) if used else ""

    @property
    def LastUsedSince(self) -> str:
        used = self.b.get("LastUsedAt")
        return fmt.since(fmt.parse_go_time(str(used))) if used else ""

    @property
    def UsageCount(self) -> str:
        return str(_int(self.b.get("UsageCount")))

    @property
    def InUse(self) -> str:
        return "true" if self.b.get("InUse") else "false"

    @property
    def Shared(self) -> str:
        return "true" if self.b.get("Shared") else "false"

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in sorted({*_CACHE_HEADERS, "CreatedAt", "LastUsedAt"})}


def sorted_cache(cache: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Never-used records first, then by last use, ties by ID."""
    def key(b: dict[str, Any]) -> tuple[bool, float, str]:
        used = b.get("LastUsedAt")
        return used is not None, fmt.parse_go_time(str(used)) if used else 0.0, str(b.get("ID", ""))
    return sorted(cache, key=key)


class DiskUsage:
    """The value ``system df -v --format`` templates see: .Images .Containers .Volumes .BuildCache."""

    def __init__(self, du: dict[str, Any], trunc: bool) -> None:
        self.Images = du_image_rows(du.get("Images") or [], trunc)
        self.Containers = [DuContainerRow(c, trunc) for c in du.get("Containers") or []]
        self.Volumes = [VolumeRow(v) for v in du.get("Volumes") or []]
        self.BuildCache = [BuildCacheRow(b, trunc) for b in sorted_cache(du.get("BuildCache") or [])]

    def to_json(self) -> dict[str, Any]:
        return {k: [row.to_json() for row in getattr(self, k)]
                for k in ("Images", "Containers", "Volumes", "BuildCache")}


def verbose_table(du: dict[str, Any]) -> str:
    d = DiskUsage(du, trunc=True)
    builder = sum(_int(b.get("Size")) for b in du.get("BuildCache") or [] if not b.get("Shared"))
    return "".join([
        "Images space usage:\n\n",
        fmt.render_list("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t"
                        "{{.UniqueSize}}\t{{.Containers}}", d.Images,
                        {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                         "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                         "Containers": "CONTAINERS"}),
        "\nContainers space usage:\n\n",
        fmt.render_list("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t"
                        "{{.Status}}\t{{.Names}}", d.Containers,
                        {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "LocalVolumes": "LOCAL VOLUMES",
                         "Size": "SIZE", "RunningFor": "CREATED", "Status": "STATUS", "Names": "NAMES"}),
        "\nLocal Volumes space usage:\n\n",
        fmt.render_list("table {{.Name}}\t{{.Links}}\t{{.Size}}", d.Volumes,
                        {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}),
        f"\nBuild cache usage: {human_size(builder)}\n\n",
        fmt.render_list("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t"
                        "{{.UsageCount}}\t{{.Shared}}", d.BuildCache, _CACHE_HEADERS),
    ])


def _pad(text: str) -> str:
    return f" {text}" if text else ""


def verbose_raw(du: dict[str, Any]) -> str:
    d = DiskUsage(du, trunc=False)
    out = [f"type: Image\nrepository: {i.Repository}\ntag: {i.Tag}\ndigest: {i.Digest}\nimage_id: {i.ID}\n"
           f"created_at: {i.CreatedAt}\nvirtual_size: {i.Size}\n\n" for i in d.Images]
    out += [f"type: Container\ncontainer_id: {c.ID}\nimage: {c.Image}\ncommand: {c.Command}\n"
            f"created_at: {c.CreatedAt}\nstate:{_pad(c.State)}\nstatus:{_pad(c.Status)}\nnames: {c.Names}\n"
            f"labels:{_pad(c.Labels)}\nports:{_pad(c.Ports)}\nsize: {c.Size}\n\n" for c in d.Containers]
    out += [f"type: Volume\nname: {v.Name}\ndriver: {v.Driver}\n\n" for v in d.Volumes]
    out += [f"type: Build Cache\nbuild_cache_id: {b.ID}\nparent_id: {b.Parent}\nbuild_cache_type: {b.CacheType}\n"
            f"description: {b.Description}\ncreated_at: {b.CreatedAt}\ncreated_since: {b.CreatedSince}\n"
            f"last_used_at: {b.LastUsedAt}\nlast_used_since: {b.LastUsedSince}\nusage_count: {b.UsageCount}\n"
            f"in_use: {b.InUse}\nshared: {b.Shared}\n\n" for b in d.BuildCache]
    return "".join(out)


def render_df(du: dict[str, Any], template: str | None, verbose: bool) -> str:
    template = template or "table"
    if not verbose:
        if template == "table":
            template = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
        elif template == "raw":
            template = "type: {{.Type}}\ntotal: {{.TotalCount}}\nactive: {{.Active}}\nsize: {{.Size}}\n" \
                       "reclaimable: {{.Reclaimable}}\n"
        return fmt.render_list(template, summary_rows(du), _HEADERS)
    if template == "table":
        return verbose_table(du)
    if template == "raw":
        return verbose_raw(du)
    is_table = template.startswith("table")
    body = "{{json .}}" if template == "json" else template[len("table"):] if is_table else template
    # a custom verbose format is one template over everything, with no newline added
    return Template(expand_escapes(body.strip(" "))).render(DiskUsage(du, trunc=is_table))


def cmd_df(c: Client, a: argparse.Namespace) -> int:
    sys.stdout.write(render_df(c.disk_usage(), a.format, a.verbose))
    return 0


def add_df_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--format")
    p.set_defaults(fn=cmd_df)


# ---------------------------------------------------------------- prune


def add_prune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--volumes", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p.set_defaults(fn=cmd_prune)


def prune_warning(all_images: bool, volumes: bool, filters: dict[str, list[str]]) -> str:
    """docker's confirmation text (before "Are you sure you want to continue?")."""
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if all_images
                 else "all dangling images")
    items.append("all build cache" if all_images else "unused build cache")
    text = "WARNING! This will remove:\n" + "".join(f"  - {item}\n" for item in items)
    shown = natural_sorted(f"{name}={v}" for name in ("label", "label!", "until") for v in filters.get(name, []))
    if shown:
        text += "\n  Items to be pruned will be filtered with:\n" + "".join(f"  - {f}\n" for f in shown)
    return text


def _sorted_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: sorted(set(filters[k])) for k in sorted(filters)}


def image_prune_report(rep: dict[str, Any]) -> tuple[int, str]:
    deleted = rep.get("ImagesDeleted") or []
    if not deleted:
        return 0, ""
    lines = [f"untagged: {d['Untagged']}\n" if d.get("Untagged") else f"deleted: {d.get('Deleted', '')}\n"
             for d in deleted]
    return _int(rep.get("SpaceReclaimed")), "Deleted Images:\n" + "".join(lines)


def cmd_prune(c: Client, a: argparse.Namespace) -> int:
    filters = parse_filter_flag(a.filter, "--filter")
    if a.volumes and "until" in filters:
        sys.stderr.write('ERROR: The "until" filter is not supported with "--volumes"\n')
        return 1
    if not confirm(prune_warning(a.all, a.volumes, filters), a.force):
        return 0
    filters = _sorted_filters(filters)
    total = 0
    from dockyard.cli.progress import StatusLine
    status = StatusLine(sys.stdout)  # on a terminal: what is being pruned right now

    def report(space: int, text: str) -> None:
        nonlocal total
        total += space
        status.clear()
        if text:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    try:
        status.show("Deleting stopped containers…")
        rep = c.prune_containers(filters)
        deleted = rep.get("ContainersDeleted") or []
        report(_int(rep.get("SpaceReclaimed")) if deleted else 0,
               "Deleted Containers:\n" + "".join(f"{d}\n" for d in deleted) if deleted else "")
        status.show("Deleting unused networks…")
        networks = c.prune_networks(filters).get("NetworksDeleted") or []
        report(0, "Deleted Networks:\n" + "".join(f"{n}\n" for n in networks) if networks else "")
        if a.volumes:
            status.show("Deleting unused volumes…")
            report(*prune_report(c.prune_volumes(filters)))
        status.show("Deleting unused images…")
        report(*image_prune_report(c.prune_images(_sorted_filters(
            {**filters, "dangling": [*filters.get("dangling", []), "false" if a.all else "true"]}))))
        status.show("Deleting build cache…")
        rep = c.prune_build_cache(a.all, filters)
        cache = rep.get("CachesDeleted") or []
        report(_int(rep.get("SpaceReclaimed")),
               "Deleted build cache objects:\n" + "".join(f"{b}\n" for b in cache) if cache else "")
    finally:
        status.clear()
    sys.stdout.write(f"Total reclaimed space: {human_size(total)}\n")
    return 0
