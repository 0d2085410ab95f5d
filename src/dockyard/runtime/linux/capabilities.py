"""Capability sets from ``process.capabilities``: bounding via PR_CAPBSET_DROP, the rest via capset."""

from __future__ import annotations

from dockyard.oci.capabilities import CAP_NAMES
from dockyard.runtime.linux.syscalls import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    capset,
    prctl,
)

TYPE_CHECKING = False  # typing costs ~4 ms per runtime call; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any



def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAP_NAMES) - 1


def cap_numbers(names: list[str] | None, last: int) -> list[int]:
    """Capability numbers for ``names``; unknown to this kernel are skipped (as runc warns and skips)."""
    out = []
    for name in names or []:
        upper = name.upper()
        if not upper.startswith("CAP_"):
            upper = "CAP_" + upper
        if upper in CAP_NAMES:
            num = CAP_NAMES.index(upper)
            if num <= last:
                out.append(num)
    return out


def _mask(nums: list[int]) -> int:
    m = 0
    for n in nums:
        m |= 1 << n
    return m


def drop_bounding(caps: dict[str, Any]) -> None:
    """Drop from the bounding set every capability not listed (needs CAP_SETPCAP, so do it first)."""
    last = last_cap()
    keep = set(cap_numbers(caps.get("bounding"), last))
    for n in range(last + 1):
        if n not in keep:
            prctl(PR_CAPBSET_DROP, n)


def apply(caps: dict[str, Any]) -> None:
    """Set effective/permitted/inheritable, then ambient (after the uid switch)."""
    last = last_cap()
    capset(_mask(cap_numbers(caps.get("effective"), last)),
           _mask(cap_numbers(caps.get("permitted"), last)),
           _mask(cap_numbers(caps.get("inheritable"), last)))
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for n in cap_numbers(caps.get("ambient"), last):
        try:
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n)
        except OSError:
            pass  # not in permitted+inheritable: the kernel refuses, runc ignores it too
