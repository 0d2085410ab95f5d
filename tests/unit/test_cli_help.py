"""``dockyard --help`` / ``COMMAND --help`` in docker's layout, docker's parse errors and exit codes, and
docs/cli.md kept in step with the parsers."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dockyard.cli import commands, helptext
from dockyard.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def full() -> helptext.DockyardParser:
    return helptext.full_parser()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_a_description_and_every_flag_help(full: helptext.DockyardParser) -> None:
    missing = []
    for p in helptext.walk(full):
        path = helptext.command_path(p)
        if not helptext.description(p):
            missing.append(f"command {path!r}")
        missing += [f"{path} {f.long}" for f in helptext.flags_of(p) if not f.help.strip()]
    assert missing == []


def test_table_names_only_commands_that_exist(full: helptext.DockyardParser) -> None:
    paths = {helptext.command_path(p) for p in helptext.walk(full)}
    stale = [path for path in commands.COMMANDS if path not in paths]
    assert stale == []
    for cmd in {c.path: c for c in commands.COMMANDS.values()}.values():
        assert cmd.description and not cmd.description.endswith("."), cmd.path
        assert not cmd.aliases or cmd.aliases[0] == cmd.path


def test_top_help_layout(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["--help"], ["-h"]):
        code, out, _ = _run(capsys, *argv)
        assert code == 0
        lines = out.splitlines()
        assert lines[0] == "Usage:  dockyard [OPTIONS] COMMAND"
        assert lines[2] == commands.DESCRIPTION
        assert lines[4] == "Common Commands:"
        assert lines[5].startswith("  run         Create")
        for section in ("Management Commands:", "Commands:", "Global Options:"):
            assert section in lines
        assert "  -H, --host string        Daemon socket to connect to (unix:///path," in lines
        assert lines[-1] == "Run 'dockyard COMMAND --help' for more information on a command."
        common = lines[5:lines.index("Management Commands:") - 1]
        assert [ln.split()[0] for ln in common] == list(commands.COMMON_COMMANDS)


def test_run_help_first_lines_and_hostname(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "run", "--help")
    lines = out.splitlines()
    assert code == 0
    assert lines[:7] == ["Usage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]", "",
                         "Create a container from an image and start it", "", "Aliases:",
                         "  dockyard container run, dockyard run", ""]
    assert lines[7] == "Options:"
    assert "  -h, --hostname string                  Container host name" in lines
    assert "  -m, --memory bytes                     Memory limit" in lines
    assert not any("--help" in ln for ln in lines)
    # -h is the hostname in run and create, as in docker: it wants a value, it does not print help
    code, _, err = _run(capsys, "run", "-h")
    assert code == 125 and err.startswith("flag needs an argument: --hostname\n")
    from dockyard.cli.main import build_parser
    a = build_parser("run").parse_args(["run", "-h", "box", "busybox"])
    assert a.hostname == "box"


@pytest.mark.parametrize("argv", [["ps", "--help"], ["container", "ls", "-h"], ["network", "create", "--help"],
                                  ["network", "--help"], ["create", "--help"], ["image", "ls", "--help"],
                                  ["completion", "-h"], ["context", "--help"]])
def test_help_everywhere(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 0 and err == ""
    words = " ".join(a for a in argv if not a.startswith("-"))
    assert out.startswith(f"Usage:  dockyard {words}")


def test_options_column_as_pflag(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "ps", "--help")
    assert "Aliases:\n  dockyard container ls, dockyard container list, dockyard container ps, dockyard ps\n" in out
    options = out.split("Options:\n", 1)[1].splitlines()
    assert options[0] == "  -a, --all             Show all containers (default shows just running)"
    assert "  -n, --last int        Show the n most recently created containers (all" in options
    assert all(len(line) <= helptext.WIDTH for line in options)
    longs = [ln.split("--")[1].split()[0] for ln in options if ln.lstrip().startswith("-")]
    assert longs == sorted(longs)  # sorted by long name, as pflag does


def test_group_help_lists_each_command_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "network")
    assert code == 0
    rows = out.split("Commands:\n", 1)[1].split("\n\n")[0].splitlines()
    assert [r.split()[0] for r in rows] == ["connect", "create", "disconnect", "inspect", "ls", "prune", "rm"]
    assert out.endswith("Run 'dockyard network COMMAND --help' for more information on a command.\n")


@pytest.mark.parametrize("argv,status,first", [
    (["run", "--bogus", "x"], 125, "unknown flag: --bogus"),
    (["ps", "--bogus"], 125, "unknown flag: --bogus"),
    (["ps", "-Z"], 125, "unknown shorthand flag: 'Z' in -Z"),
    (["network", "create", "--bogus"], 125, "unknown flag: --bogus"),
    (["run", "--cpus"], 125, "flag needs an argument: --cpus"),
    (["ps", "-n", "abc"], 125, 'invalid argument "abc" for "-n, --last" flag: strconv.ParseInt: parsing "abc": '
                               "invalid syntax"),
    (["run"], 1, "dockyard: 'dockyard run' requires at least 1 argument"),
    (["logs", "a", "b"], 1, "dockyard: 'dockyard logs' requires 1 argument"),
    (["port", "a", "b", "c"], 1, "dockyard: 'dockyard port' requires at least 1 and at most 2 arguments"),
    (["foo"], 1, "dockyard: unknown command: dockyard foo"),
    (["network", "foo"], 1, "dockyard: unknown command: dockyard network foo"),
])
def test_parse_errors_as_docker(capsys: pytest.CaptureFixture[str], argv: list[str], status: int,
                                first: str) -> None:
    code, out, err = _run(capsys, *argv)
    assert (code, out) == (status, "")
    lines = err.splitlines()
    assert lines[0] == first
    verb = " ".join(w for w in argv if not w.startswith("-") and w not in ("x", "abc", "a", "b", "c"))
    if argv[0] != "foo" and verb != "network foo":
        assert lines[2].startswith(f"Usage:  dockyard {verb}")
        assert lines[-1] in (f"Run 'dockyard {verb} --help' for more information",
                             f"See 'dockyard {verb} --help' for more information")


def test_pflag_wrap() -> None:
    # the first line leaves `slop` columns free, later lines are indented to the help column
    text = helptext.wrap(41, 79, "Add a custom host-to-IP mapping (host:ip)")
    assert text == "Add a custom host-to-IP mapping\n" + " " * 41 + "(host:ip)"
    assert helptext.wrap(10, 79, "short") == "short"


def test_docs_cli_md_is_current() -> None:
    """docs/cli.md is generated: `python -m dockyard.cli.helptext --markdown > docs/cli.md`."""
    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == helptext.markdown(), "docs/cli.md is out of date: regenerate it with " \
        "`.venv/bin/python -m dockyard.cli.helptext --markdown > docs/cli.md`"


def test_markdown_documents_every_command(full: helptext.DockyardParser) -> None:
    text = helptext.markdown()
    for p in helptext.walk(full):
        path = helptext.canonical(helptext.command_path(p))
        if path:
            assert f"\n## dockyard {path}\n" in text
    assert "\n## dockyard run\n" not in text  # an alias is documented under its canonical path
    assert "| `-h`, `--hostname` | string |  | Container host name |" in text


def test_parser_class_reaches_every_subcommand(full: helptext.DockyardParser) -> None:
    assert all(isinstance(p, argparse.ArgumentParser) for p in helptext.walk(full))
    assert all(isinstance(p, helptext.DockyardParser) for p in helptext.walk(full)
               if not helptext.command_path(p).startswith(("registry", "tls")))


def test_docs_cli_md_links_resolve() -> None:
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    heads = {"#" + h.strip().lower().replace(" ", "-") for h in re.findall(r"^## (.*)$", text, re.M)}
    assert sorted(set(re.findall(r"\]\((#[^)]+)\)", text)) - heads) == []
