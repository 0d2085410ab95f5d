"""Output helpers shared by the commands: Go's tabwriter, Docker's humanised times and sizes,
``--format`` handling (``table`` prefix, ``json``) and Go-style time printing."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any

# datetime and the template engine are imported where used: `run` needs neither (~3 ms)

# ---------------------------------------------------------------- tabwriter


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells as Go's text/tabwriter does with (minwidth, tabwidth=1, padding, ' ').

    A column block is a run of consecutive lines that have a cell in that column; the last cell of
    a line is never padded; a line without tabs ends every block above it.
    """
    out: list[str] = []
    block: list[list[str]] = []
    lines = text.split("\n")
    trailing_newline = text.endswith("\n")
    if trailing_newline:
        lines = lines[:-1]
    for line in lines:
        cells = line.split("\t")
        block.append(cells)
        if len(cells) == 1:
            out.extend(_format_block(block, minwidth, padding))
            block = []
    out.extend(_format_block(block, minwidth, padding))
    return "\n".join(out) + ("\n" if trailing_newline else "")


def _format_block(lines: list[list[str]], minwidth: int, padding: int) -> list[str]:
    rendered = [""] * len(lines)
    _format(lines, 0, len(lines), [], minwidth, padding, rendered)
    return rendered


def _format(lines: list[list[str]], line0: int, line1: int, widths: list[int], minwidth: int,
            padding: int, rendered: list[str]) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, line0, this, widths, rendered)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format(lines, line0, this, [*widths, width], minwidth, padding, rendered)
        line0 = this
    _write_lines(lines, line0, line1, widths, rendered)


def _write_lines(lines: list[list[str]], line0: int, line1: int, widths: list[int],
                 rendered: list[str]) -> None:
    for i in range(line0, line1):
        parts = []
        for j, cell in enumerate(lines[i]):
            parts.append(cell)
            if j < len(widths) and j < len(lines[i]) - 1:
                parts.append(" " * (widths[j] - len(cell)))
        rendered[i] = "".join(parts)


# ---------------------------------------------------------------- humanising (go-units)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(ts: float, now: float | None = None) -> str:
    """"2 minutes ago" for a unix timestamp."""
    return human_duration((time.time() if now is None else now) - ts) + " ago"


_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def _go_g(value: float, precision: int) -> str:
    # Go's %.Ng and Python's agree, including the switch to exponent form.
    return f"{value:.{precision}g}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision (decimal units): 4.26MB, 1.2GB, 512B."""
    i = 0
    while size >= 1000.0 and i < len(_DECIMAL) - 1:
        size /= 1000.0
        i += 1
    return _go_g(size, precision) + _DECIMAL[i]


def bytes_size(size: float) -> str:
    """go-units BytesSize (binary units, precision 4): 1.944GiB."""
    i = 0
    while size >= 1024.0 and i < len(_BINARY) - 1:
        size /= 1024.0
        i += 1
    return _go_g(size, 4) + _BINARY[i]


def go_time(ts: float) -> str:
    """Go's time.Time.String() for a local time, without the monotonic part:
    ``2024-01-02 15:04:05 +0000 UTC``."""
    from datetime import datetime
    dt = datetime.fromtimestamp(ts).astimezone()
    return dt.strftime("%Y-%m-%d %H:%M:%S %z ") + (dt.tzname() or "")


def rfc3339(ts: float) -> str:
    """RFC3339 in local time as Go prints it (``Z`` for UTC)."""
    from datetime import UTC, datetime
    dt = datetime.fromtimestamp(ts).astimezone()
    if dt.utcoffset() == UTC.utcoffset(None):
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    s = dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    return s[:-2] + ":" + s[-2:]


def rfc3339nano_fixed(ns: int) -> str:
    """jsonmessage.RFC3339NanoFixed: 2006-01-02T15:04:05.000000000Z07:00 (local time)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = rfc3339(secs)
    cut = 19
    return base[:cut] + f".{frac:09d}" + base[cut:]


def parse_go_time(text: str) -> float:
    """Parse the RFC3339(Nano) strings the API returns (``Created`` of inspect) to unix time."""
    if not text:
        return 0.0
    head, _, rest = text.partition(".")
    frac = 0.0
    tz = ""
    if rest:
        digits = ""
        for k, ch in enumerate(rest):
            if not ch.isdigit():
                tz = rest[k:]
                break
            digits += ch
        frac = float("0." + digits) if digits else 0.0
    else:
        head, tz = text[:19], text[19:]
    tz = "+00:00" if tz in ("Z", "") else tz
    from datetime import datetime
    return datetime.fromisoformat(head + tz).timestamp() + frac


def ellipsis(text: str, width: int) -> str:
    """docker/cli formatter.Ellipsis: cut to ``width`` characters including a trailing '…'."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    return text[: width - 1] + "…"


def go_quote(text: str) -> str:
    """strconv.Quote for the common cases (quotes, backslashes, control characters)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------- --format


def go_json(value: Any) -> str:
    """Go's ``{{json .}}`` rendering of ``value`` (see ``gotemplate.go_json``)."""
    from dockyard.cli.gotemplate import go_json as render
    return render(value)


def render_list(fmt: str, items: Iterable[Any], headers: Mapping[str, str], quiet_field: str = "ID") -> str:
    """Render items with a Docker ``--format`` (``table ...``, ``json`` or a plain template).

    ``headers`` maps a field name to its column header; a table with no items still prints the
    header row, like Docker.
    """
    from dockyard.cli.gotemplate import Template, expand_escapes, go_json
    if fmt == "json":
        return "".join(go_json(item) + "\n" for item in items)
    is_table = fmt.startswith("table")
    body = fmt[len("table"):] if is_table else fmt
    body = expand_escapes(body.strip(" "))
    tmpl = Template(body)
    rows = [tmpl.render(item) + "\n" for item in items]
    if not is_table:
        return "".join(rows)
    head = tmpl.render(_HeaderMap(headers), header=True) + "\n"
    return tabwrite(head + "".join(rows))


class _HeaderMap(dict[str, str]):
    """Field lookups on the header row give the column title (upper-cased name if unknown)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__(headers)

    def get(self, key: str, default: Any = None) -> str:
        return super().get(key, key.upper())


def render_each(fmt: str, items: Iterable[Any]) -> str:
    """Plain template per item (inspect, version, info): one output line per item."""
    from dockyard.cli.gotemplate import Template, expand_escapes
    tmpl = Template(expand_escapes(fmt))
    return "".join(tmpl.render(item) + "\n" for item in items)


def write_archive(resp: Any, output: str | None) -> None:
    """A tar response to ``output`` (written aside and renamed into place) or to stdout."""
    import os
    import sys
    if not output:
        out = sys.stdout.buffer
        for chunk in resp.iter_chunks():
            out.write(chunk)
        out.flush()
        return
    tmp = output + ".dockyard-tmp"
    try:
        with open(tmp, "wb") as f:
            for chunk in resp.iter_chunks():
                f.write(chunk)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
