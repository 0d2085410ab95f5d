"""The side-by-side benchmark's results: samples by case group, engine and variant; the Markdown
summary (machine, one table per group with min/median/max and dockyard/peer, the goals of issue 9
marked met or not) and a PNG of the distributions."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE = "dockyard"


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    unit: str
    higher_better: bool = False
    derived: tuple[tuple[str, float], ...] = ()  # (column, amount): amount / median, e.g. MB/s
    scale: float = 1.0                             # derived: unit to the derived denominator (ms → s)
    note: str = ""


Row = tuple[str, str]  # (who: engine or client → engine, variant)


@dataclass
class Results:
    groups: dict[str, Group] = field(default_factory=dict)
    samples: dict[str, dict[Row, list[float]]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def group(self, g: Group) -> None:
        self.groups.setdefault(g.key, g)
        self.samples.setdefault(g.key, {})

    def add(self, key: str, who: str, variant: str, values: Iterable[float]) -> None:
        self.samples[key].setdefault((who, variant), []).extend(values)

    def note(self, key: str, text: str) -> None:
        self.notes.setdefault(key, []).append(text)

    def median(self, key: str, who: str, variant: str = "") -> float | None:
        s = self.samples.get(key, {}).get((who, variant))
        return statistics.median(s) if s else None


@dataclass(frozen=True)
class Goal:
    text: str
    group: str
    mine: Row
    peer: Row | None       # None: ``mine``'s median against ``limit`` itself
    op: str                # "<=", "<" or ">=" on the ratio mine/peer (or on the value)
    limit: float


def _fmt(v: float) -> str:
    a = abs(v)
    return f"{v:.0f}" if a >= 1000 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.3f}"


def _ratio(r: float) -> str:
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.3f}×" if r >= 0.001 else f"{r:.1e}×"


def _check(value: float, op: str, limit: float) -> bool:
    return value <= limit if op == "<=" else value < limit if op == "<" else value >= limit


def table(res: Results, g: Group) -> list[str]:
    rows = res.samples[g.key]
    if not rows:
        return []
    variants = any(v for _, v in rows)
    head = ["engine", *(["case"] if variants else []), f"min {g.unit}", f"median {g.unit}", f"max {g.unit}",
            *[f"{col} (median)" for col, _ in g.derived], "n", "dockyard / this"]
    lines = [f"## {g.title}", ""]
    if g.note:
        lines += [g.note, ""]
    sep = ["---"] * (1 + variants) + ["---:"] * (len(head) - 1 - variants)
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(sep) + "|"]
    for (who, variant), s in rows.items():
        med = statistics.median(s)
        ref = res.median(g.key, REFERENCE, variant)
        ratio = "" if who == REFERENCE or ref is None or not med else _ratio(ref / med)
        derived = [_fmt(amount / (med * g.scale)) if med else "" for _, amount in g.derived]
        cells = [who, *([variant] if variants else []), _fmt(min(s)), _fmt(med), _fmt(max(s)), *derived,
                 str(len(s)), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    better = "higher is better, so a ratio above 1 favours dockyard" if g.higher_better else \
        "lower is better, so a ratio below 1 favours dockyard"
    lines += ["", f"Ratio: dockyard's median over this row's, same case; {better}."]
    for n in res.notes.get(g.key, []):
        lines.append(f"- {n}")
    return [*lines, ""]


def goals(res: Results, goal_list: list[Goal]) -> list[str]:
    lines = ["## Goals (issue 9)", "", "| goal | measured | status |", "|---|---:|---|"]
    for goal in goal_list:
        mine = res.median(goal.group, *goal.mine)
        unit = res.groups[goal.group].unit if goal.group in res.groups else ""
        if goal.peer is None:
            if mine is None:
                lines.append(f"| {goal.text} | — | n/a (not measured) |")
                continue
            ok = _check(mine, goal.op, goal.limit)
            lines.append(f"| {goal.text} | {_fmt(mine)} {unit} | {'met' if ok else '**not met**'} |")
            continue
        peer = res.median(goal.group, *goal.peer)
        if mine is None or peer is None or not peer:
            absent = goal.peer[0] if peer is None else goal.mine[0]
            lines.append(f"| {goal.text} | — | n/a ({absent} not measured) |")
            continue
        ratio = mine / peer
        ok = _check(ratio, goal.op, goal.limit)
        lines.append(f"| {goal.text} | {_ratio(ratio)} ({_fmt(mine)} / {_fmt(peer)} {unit}) | "
                     f"{'met' if ok else '**not met**'} |")
    return [*lines, ""]


def markdown(res: Results, header: list[str], goal_list: list[Goal]) -> str:
    lines = [*header, ""]
    lines += goals(res, goal_list)
    for g in res.groups.values():
        lines += table(res, g)
    return "\n".join(lines).rstrip() + "\n"


ENGINE_COLOURS = {"dockyard": "#1f77b4", "docker": "#d62728", "podman": "#9467bd", "runc": "#7f7f7f"}


def _colour(who: str) -> str:
    if who.startswith("docker CLI → dockyard"):
        return "#17becf"
    for key, colour in ENGINE_COLOURS.items():
        if who.startswith(key):
            return colour
    return "#2ca02c"


def plot(res: Results, out: Path, title: str) -> None:
    """One panel per case group: a box per (engine, case) and every sample as a dot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in res.groups.values() if res.samples[g.key]]
    cols = 2
    nrows = (len(groups) + cols - 1) // cols
    heights = [max(len(res.samples[g.key]) for g in groups[r * cols:(r + 1) * cols]) for r in range(nrows)]
    fig, axes = plt.subplots(nrows, cols, figsize=(16, sum(0.42 * h + 1.3 for h in heights)),
                             gridspec_kw={"height_ratios": [max(h, 2) for h in heights]}, squeeze=False)
    for i, g in enumerate(groups):
        ax = axes[i // cols][i % cols]
        rows = list(res.samples[g.key].items())
        labels = [f"{who} · {variant}" if variant else who for (who, variant), _ in rows]
        data = [s for _, s in rows]
        positions = list(range(len(rows), 0, -1))
        box = ax.boxplot(data, positions=positions, vert=False, widths=0.6, patch_artist=True,
                         showfliers=False)
        for patch, ((who, _), _s) in zip(box["boxes"], rows, strict=True):
            patch.set_facecolor(_colour(who))
            patch.set_alpha(0.35)
        for pos, ((who, _), s) in zip(positions, rows, strict=True):
            jitter = [pos + 0.18 * ((k * 0.618) % 1 - 0.5) for k in range(len(s))]
            ax.scatter(s, jitter, s=10, color=_colour(who), zorder=3)
        ax.set_yticks(positions)
        ax.set_yticklabels(labels, fontsize=8)
        better = "higher is better" if g.higher_better else "lower is better"
        ax.set_title(f"{g.title} ({g.unit}; {better})", fontsize=10)
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
    for j in range(len(groups), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(out, dpi=90)
    plt.close(fig)
