"""``cnm completion bash``: a bash completion script generated from the CLI's own parser.

The script is static (commands, flags and flag choices as tables), so it never drifts from the
parser; only the names of networks (for ``network inspect`` and ``network rm``) and of
containers (for the commands that take one) are asked of the daemon at completion time. Load it
with ``source <(cnm completion bash)``.
"""

from __future__ import annotations

import argparse
import shlex

_SCRIPT = r"""# bash completion for cnm; load with: source <(cnm completion bash)
declare -gA _cnm_commands=(
%(commands)s
)
declare -gA _cnm_flags=(
%(flags)s
)
declare -gA _cnm_choices=(
%(choices)s
)
declare -gA _cnm_valued=(
%(valued)s
)

_cnm() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local path=cnm host=() word key i skip=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if ((skip)); then
            skip=0
            continue
        fi
        case " ${_cnm_valued[$path]} " in *" $word "*)
            skip=1
            [[ $path == cnm && ($word == -H || $word == --host) ]] && host=(-H "${COMP_WORDS[i+1]}")
            continue ;;
        esac
        [[ $word == -* ]] && continue
        key="$path $word"
        [[ -n ${_cnm_flags[$key]+set} ]] && path=$key
    done
    case " ${_cnm_valued[$path]} " in *" $prev "*)
        if [[ -n ${_cnm_choices[$prev]+set} ]]; then
            COMPREPLY=($(compgen -W "${_cnm_choices[$prev]}" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_cnm_flags[$path]}" -- "$cur"))
    elif [[ -n ${_cnm_commands[$path]} ]]; then
        COMPREPLY=($(compgen -W "${_cnm_commands[$path]}" -- "$cur"))
    else
        case $path in
        "cnm network inspect" | "cnm network rm" | "cnm network remove")
            COMPREPLY=($(compgen -W "$(cnm "${host[@]}" network ls --format '{{.Name}}' 2>/dev/null)" -- "$cur")) ;;
        "cnm start" | "cnm stop" | "cnm restart" | "cnm kill" | "cnm rm" | "cnm logs" | \
        "cnm exec" | "cnm port" | "cnm rename" | "cnm inspect")
            COMPREPLY=($(compgen -W "$(cnm "${host[@]}" ps -a --format '{{.Names}}' 2>/dev/null)" -- "$cur")) ;;
        esac
    fi
}
complete -F _cnm cnm
"""


def _walk(
    parser: argparse.ArgumentParser,
    path: str,
    tables: tuple[dict[str, list[str]], ...],
) -> None:
    commands, flags, choices, valued = tables
    commands[path] = []
    flags[path] = []
    valued[path] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                commands[path].append(name)
                _walk(child, f"{path} {name}", tables)
            continue
        flags[path] += action.option_strings
        if action.option_strings and action.nargs != 0:
            valued[path] += action.option_strings
            if action.choices:
                for option in action.option_strings:
                    choices[option] = [str(c) for c in action.choices]


def _table(entries: dict[str, list[str]]) -> str:
    return "\n".join(
        f"    [{shlex.quote(key)}]={shlex.quote(' '.join(values))}"
        for key, values in sorted(entries.items())
    )


def bash_script(parser: argparse.ArgumentParser) -> str:
    commands: dict[str, list[str]] = {}
    flags: dict[str, list[str]] = {}
    choices: dict[str, list[str]] = {}
    valued: dict[str, list[str]] = {}
    _walk(parser, "cnm", (commands, flags, choices, valued))
    return _SCRIPT % {
        "commands": _table({path: names for path, names in commands.items() if names}),
        "flags": _table(flags),
        "choices": _table(choices),
        "valued": _table(valued),
    }
