"""``dockyard completion bash|zsh``: a shell completion script made from the parsers themselves.

The script knows every command, subcommand and flag statically, and asks the daemon for container,
image, network and volume names when it completes one (``dockyard ps -a --format '{{.Names}}'`` and
the like, with the -H/--host or -c/--context given on the command line, at most 2 s, errors
discarded: with no daemon there is simply nothing to offer)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dockyard.cli import helptext

# what a positional argument or a flag's value names, by its dest/metavar
_KINDS = {"container": "containers", "containers": "containers", "image": "images", "images": "images",
          "source": "images", "network": "networks", "volume": "volumes", "file": "files",
          "path": "files", "paths": "files"}
_BY_COMMAND = {  # where the dest alone does not say it
    "container cp": ["cp"], "image ls": ["images"], "inspect": ["containers images"],
    "network inspect": ["networks"], "network rm": ["networks"], "volume inspect": ["volumes"],
    "volume rm": ["volumes"], "container run": ["images", "none"], "container create": ["images", "none"],
    "container exec": ["containers", "none"], "container top": ["containers", "none"],
}
_FLAG_KINDS = {"--network": "networks", "--volumes-from": "containers", "--link": "containers",
               "--volume": "volumes", "--env-file": "files", "--file": "files", "--input": "files",
               "--output": "files", "--iidfile": "files", "--busybox": "files", "--tlscacert": "files",
               "--tlscert": "files", "--tlskey": "files"}
_NAME_SOURCES = {  # the CLI command that lists each kind of name
    "containers": "ps -a --format '{{.Names}}'",
    "images": "images --format '{{.Repository}}:{{.Tag}}'",
    "networks": "network ls --format '{{.Name}}'",
    "volumes": "volume ls --format '{{.Name}}'",
}


def add_completion_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=["bash", "zsh"], metavar="SHELL")
    p.set_defaults(fn=cmd_completion, local=True)


def cmd_completion(c: Any, a: argparse.Namespace) -> int:
    sys.stdout.write(zsh_script() if a.shell == "zsh" else bash_script())
    return 0


def _positional_kinds(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """What each positional names, in order; the last repeats when it takes several."""
    canon = helptext.canonical(path)
    if canon in _BY_COMMAND:
        return _BY_COMMAND[canon]
    kinds = []
    for a in parser._actions:
        if a.option_strings or isinstance(a, argparse._SubParsersAction):
            continue
        if a.choices:
            kinds.append("choices:" + ",".join(str(c) for c in a.choices))
        else:
            kinds.append(_KINDS.get(str(a.dest), _KINDS.get(str(a.metavar or "").lower(), "none")))
    return kinds


class _Spec:
    """The static part of the script: per command path its subcommands, flags, value flags, the
    kinds of its positionals and of its flags' values."""

    def __init__(self) -> None:
        self.subs: dict[str, list[str]] = {}
        self.flags: dict[str, list[str]] = {}
        self.value_flags: dict[str, list[str]] = {}
        self.args: dict[str, list[str]] = {}
        self.flag_kinds: dict[str, list[str]] = {}

    def add(self, parser: argparse.ArgumentParser) -> None:
        path = helptext.command_path(parser)
        sub = helptext._subparsers(parser)
        if sub is not None:
            self.subs[path] = sorted(sub.choices)
        opts: list[str] = []
        values: list[str] = []
        kinds: list[str] = []
        for a in parser._actions:
            if not a.option_strings or a.help is argparse.SUPPRESS:
                continue
            opts.extend(a.option_strings)
            if a.nargs != 0:
                values.extend(a.option_strings)
                kind = ("choices:" + ",".join(map(str, a.choices)) if a.choices
                        else next((_FLAG_KINDS[o] for o in a.option_strings if o in _FLAG_KINDS), ""))
                if kind:
                    kinds.extend(f"{o}={kind}" for o in a.option_strings)
        self.flags[path] = sorted(set(opts))
        self.value_flags[path] = sorted(set(values))
        self.flag_kinds[path] = sorted(kinds)
        if sub is None:
            self.args[path] = _positional_kinds(parser, path)


def spec() -> _Spec:
    s = _Spec()
    for parser in helptext.walk(helptext.full_parser()):
        s.add(parser)
    return s


def _q(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def _case(name: str, table: dict[str, list[str]]) -> str:
    """A shell function printing the words for a command path (``$1``)."""
    lines = [f"{name}() {{", '    case "$1" in']
    for path, words in sorted(table.items()):
        if words:
            lines.append(f"        {_q(path)}) echo {_q(' '.join(words))} ;;")
    lines += ["    esac", "}"]
    return "\n".join(lines)


_BASH_LOGIC = r'''
# the daemon's names of a kind, quietly and quickly (with the -H/--host or -c/--context given)
_dockyard_names() {
    local -a cmd
    case "$1" in
        containers) cmd=(@containers@) ;;
        images) cmd=(@images@) ;;
        networks) cmd=(@networks@) ;;
        volumes) cmd=(@volumes@) ;;
        *) return ;;
    esac
    local -a run=("${_dy_words[0]}" "${_dy_global[@]}" "${cmd[@]}")
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 "${run[@]}" </dev/null 2>/dev/null
    else
        "${run[@]}" </dev/null 2>/dev/null
    fi | grep -v '<none>'
}

# COMPREPLY for the current word given a kind (names, files, choices)
_dockyard_complete_kind() {
    local kind=$1 cur=$2 k words=""
    for k in $kind; do
        case "$k" in
            containers|images|networks|volumes) words="$words $(_dockyard_names "$k")" ;;
            files) COMPREPLY+=($(compgen -f -- "$cur")) ;;
            cp)
                if [[ $cur == *:* ]]; then :; else
                    words="$words $(_dockyard_names containers | sed 's/$/:/')"
                    COMPREPLY+=($(compgen -f -- "$cur"))
                fi ;;
            choices:*) words="$words ${k#choices:}"; words=${words//,/ } ;;
        esac
    done
    COMPREPLY+=($(compgen -W "$words" -- "$cur"))
}

_dockyard() {
    local -a _dy_words=() _dy_global=()
    local _dy_cword=0 i w
    # put back together the words bash split at ':' (image:tag, container:path)
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        if ((i > 0)) && { [[ $w == : ]] || [[ ${COMP_WORDS[i-1]} == : ]]; } && ((${#_dy_words[@]} > 1)); then
            _dy_words[${#_dy_words[@]}-1]+=$w
        else
            _dy_words+=("$w")
        fi
        ((i == COMP_CWORD)) && _dy_cword=$((${#_dy_words[@]} - 1))
    done
    local cur=${_dy_words[_dy_cword]} prefix=""
    [[ $cur == *:* ]] && prefix=${cur%:*}:
    COMPREPLY=()
    # global flags, then the command
    i=1
    while ((i < _dy_cword)); do
        w=${_dy_words[i]}
        case "$w" in
            -H|--host|-c|--context|--tlscacert|--tlscert|--tlskey)
                _dy_global+=("$w" "${_dy_words[i+1]}"); ((i += 2)); continue ;;
            --host=*|--context=*) _dy_global+=("$w") ;;
            -*) ;;
            *) break ;;
        esac
        ((i++))
    done
    local path=""
    if ((i >= _dy_cword)); then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$(_dockyard_flags '')" -- "$cur"))
        else
            case "${_dy_words[_dy_cword-1]}" in
                -H|--host|-c|--context) ;;
                --tlscacert|--tlscert|--tlskey) COMPREPLY=($(compgen -f -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "$(_dockyard_subcommands '')" -- "$cur")) ;;
            esac
        fi
        return 0
    fi
    path=${_dy_words[i]}
    ((i++))
    local subs
    subs=$(_dockyard_subcommands "$path")
    if [[ -n $subs ]]; then
        while ((i < _dy_cword)) && [[ ${_dy_words[i]} == -* ]]; do ((i++)); done
        if ((i >= _dy_cword)); then
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$(_dockyard_flags "$path")" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$subs" -- "$cur"))
            fi
            return 0
        fi
        path="$path ${_dy_words[i]}"
        ((i++))
    fi
    local values=" $(_dockyard_value_flags "$path") "
    local kinds=" $(_dockyard_flag_kinds "$path") "
    # the value of a flag: "--network <TAB>" or "--network=<TAB>"
    local prev=${_dy_words[_dy_cword-1]} flag=""
    if [[ $cur == --*=* ]]; then
        flag=${cur%%=*}; cur=${cur#*=}; prefix=""
    elif ((_dy_cword - 1 >= i)) && [[ $values == *" $prev "* ]]; then
        flag=$prev
    fi
    if [[ -n $flag ]]; then
        if [[ $kinds == *" $flag="* ]]; then
            local kind=${kinds#*" $flag="}
            _dockyard_complete_kind "${kind%% *}" "$cur"
        fi
    else
        # which positional this is: count the words that are neither flags nor their values
        local n=0 j=$i dashdash=0
        while ((j < _dy_cword)); do
            w=${_dy_words[j]}
            if ((dashdash)) || [[ $w != -* ]]; then
                ((n++))
            elif [[ $w == -- ]]; then
                dashdash=1
            elif [[ $w != *=* && $values == *" $w "* ]]; then
                ((j++))
            fi
            ((j++))
        done
        local -a args=($(_dockyard_args "$path"))
        local kind=none
        if ((${#args[@]} > 0)); then
            if ((n < ${#args[@]})); then kind=${args[n]}; else kind=${args[${#args[@]}-1]}; fi
        fi
        # after run's IMAGE or exec's CONTAINER comes the container's command: not ours to complete
        if [[ $kind == none ]] && ((n > 0)) && ((${#args[@]} > 1)); then
            return 0
        fi
        if [[ $cur == -* ]] && ! ((dashdash)); then
            COMPREPLY=($(compgen -W "$(_dockyard_flags "$path")" -- "$cur"))
            return 0
        fi
        _dockyard_complete_kind "${kind//+/ }" "$cur"
    fi
    # bash split the word at ':': offer only what follows the last ':'
    if [[ -n $prefix ]]; then
        local k
        for k in "${!COMPREPLY[@]}"; do COMPREPLY[k]=${COMPREPLY[k]#"$prefix"}; done
    fi
    return 0
}
'''


def _bash_body() -> str:
    s = spec()
    # several kinds for one positional are joined with '+' so the list stays one word per positional
    args = {p: [k.replace(" ", "+") for k in kinds] for p, kinds in s.args.items()}
    logic = _BASH_LOGIC
    for kind, command in _NAME_SOURCES.items():
        logic = logic.replace(f"@{kind}@", command)
    return "\n\n".join([
        _case("_dockyard_subcommands", s.subs), _case("_dockyard_flags", s.flags),
        _case("_dockyard_value_flags", s.value_flags), _case("_dockyard_flag_kinds", s.flag_kinds),
        _case("_dockyard_args", args), logic.strip()])


def bash_script() -> str:
    return ("# bash completion for dockyard; generated by `dockyard completion bash`.\n"
            "# Load it with:  source <(dockyard completion bash)\n\n"
            + _bash_body() + "\n\ncomplete -F _dockyard dockyard\n")


def zsh_script() -> str:
    """zsh runs the same completion through its bash emulation (bashcompinit), with bash's 0-based
    arrays; ``_dy_words`` and friends keep clear of zsh's own ``words``."""
    return ("#compdef dockyard\n"
            "# zsh completion for dockyard; generated by `dockyard completion zsh`.\n"
            "# Load it with:  source <(dockyard completion zsh)\n\n"
            "autoload -U +X compinit && { (( ${+_comps} )) || compinit; }\n"
            "autoload -U +X bashcompinit && bashcompinit\n\n"
            + _bash_body().replace("_dockyard() {\n", "_dockyard() {\n    [[ -n ${ZSH_VERSION-} ]] && "
                                   "setopt localoptions ksharrays\n", 1)
            + "\n\ncomplete -F _dockyard dockyard\n")
