"""Tables, humanised values, ps/images rows."""

from __future__ import annotations

import time

import pytest

from dockyard.cli import formatting as fmt
from dockyard.cli.containers import _PS_HEADERS, PsRow
from dockyard.cli.images import _IMG_HEADERS, image_rows


@pytest.mark.parametrize(("secs", "out"), [
    (0.5, "Less than a second"), (1, "1 second"), (2, "2 seconds"), (59, "59 seconds"),
    (60, "About a minute"), (150, "2 minutes"), (3600, "About an hour"), (7200, "2 hours"),
    (47 * 3600, "47 hours"), (3 * 86400, "3 days"), (15 * 86400, "2 weeks"),
    (90 * 86400, "3 months"), (800 * 86400, "2 years"),
])
def test_human_duration(secs: float, out: str) -> None:
    assert fmt.human_duration(secs) == out


@pytest.mark.parametrize(("size", "out"), [
    (0, "0B"), (512, "512B"), (4_260_000, "4.26MB"), (1_200_000_000, "1.2GB"), (12_345, "12.3kB"),
    (1_000_000, "1MB"),
])
def test_human_size(size: int, out: str) -> None:
    assert fmt.human_size(size) == out


def test_tabwriter_docker_padding() -> None:
    text = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n"
    assert fmt.tabwrite(text) == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


def test_tabwriter_aligns_to_widest_cell() -> None:
    out = fmt.tabwrite("A\tB\nlongervalue-here\tx\n")
    assert out == "A" + " " * 18 + "B\nlongervalue-here   x\n"


def test_ps_table() -> None:
    now = time.time()
    c = {"Id": "a" * 64, "Names": ["/web"], "Image": "busybox", "Command": "sh -c 'echo hello world'",
         "Created": now - 5, "State": "running", "Status": "Up 3 seconds", "Ports": [], "Labels": {"x": "1"}}
    out = fmt.render_list("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
                          "{{.Ports}}\t{{.Names}}", [PsRow(c, True)], _PS_HEADERS)
    head, row = out.splitlines()
    assert head.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert row.startswith("a" * 12 + "   busybox   \"sh -c 'echo hello w…\"   5 seconds ago   Up 3 seconds")
    assert row.endswith("web")
    assert PsRow(c, True).Label("x") == "1"
    assert fmt.render_list('{{.Names}} {{.Label "x"}}', [PsRow(c, True)], _PS_HEADERS) == "web 1\n"


def test_empty_table_prints_header() -> None:
    assert fmt.render_list("table {{.ID}}\t{{.Names}}", [], _PS_HEADERS) == "CONTAINER ID   NAMES\n"


def test_images_rows() -> None:
    img = {"Id": "sha256:" + "b" * 64, "RepoTags": ["busybox:latest", "x/y:1"], "Created": time.time() - 7200,
           "Size": 4_260_000}
    rows = image_rows([img, {"Id": "sha256:" + "c" * 64, "RepoTags": None, "Created": 0, "Size": 1}], True)
    out = fmt.render_list("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}", rows,
                          _IMG_HEADERS)
    lines = out.splitlines()
    assert lines[0] == "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE"
    assert lines[1].split()[:3] == ["busybox", "latest", "b" * 12]
    assert "2 hours ago" in lines[1] and lines[1].endswith("4.26MB")
    assert lines[3].startswith("<none>       <none>")


def test_go_quote_and_ellipsis() -> None:
    assert fmt.go_quote('a"b\\') == '"a\\"b\\\\"'
    assert fmt.ellipsis("abcdef", 4) == "abc…"
