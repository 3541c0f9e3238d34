#!/usr/bin/env python
"""Regenerate the README's command tables from the command line itself (click's commands, as ``--help`` shows them).

Each row is a command's synopsis (its arguments and every option that ``--help`` lists, with its metavar or its
choices) and its help text. The README keeps the tables between ``<!-- commands:begin -->`` and
``<!-- commands:end -->`` (the core commands) and ``<!-- experiment-commands:begin -->`` and
``<!-- experiment-commands:end -->`` (mad, program, sweep), ``<!-- lra-commands:begin -->`` and
``<!-- lra-commands:end -->`` (lra, in the Long Range Arena section); a test fails when one drifts from the CLI.

Usage: ``python scripts/gen_command_table.py [--check]`` (``--check``: exit 1 if the README is stale).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXPERIMENTS = ("mad", "program", "sweep")
# the order of a user's path through them; a command not named here comes after, in name order
ORDER = ("validate", "fmt", "compile", "graph", "diff", "git-setup", "train", "discretize", "generate", "eval",
         "families", "mad", "program", "sweep", "lra")
SECTIONS = {"commands": None, "experiment-commands": EXPERIMENTS, "lra-commands": ("lra",)}  # None: every other
ELSEWHERE = tuple(name for names in SECTIONS.values() if names for name in names)


def _metavar(param) -> str:
    import click

    if param.metavar:
        return param.metavar
    kind = param.type
    if isinstance(kind, click.Choice):
        return "|".join(str(c) for c in kind.choices)
    if isinstance(kind, click.Path):
        return "DIR" if not kind.file_okay else "FILE" if not kind.dir_okay else "PATH"
    if isinstance(kind, click.types.IntParamType):
        return "N"
    if isinstance(kind, click.types.FloatParamType):
        return "X"
    return "TEXT"


def _option(param) -> str:
    """``[-o DIR]``, ``[--resume]``, ``[--color|--no-color]``, ``--from FILE`` (required: no brackets): the
    option by the name it is declared with first."""
    name = param.opts[0]
    if param.is_flag:
        text = "|".join([name, *param.secondary_opts]) if param.secondary_opts else name
    else:
        text = f"{name} {_metavar(param)}"
    return text if param.required else f"[{text}]"


def _argument(param) -> str:
    name = param.metavar or param.name.upper()
    text = f"{name}..." if param.nargs == -1 and not param.metavar else name
    return text if param.required else f"[{text}]"


def synopsis(name: str, command) -> str:
    """``hybridc NAME ARGS [OPTIONS]``: every parameter ``--help`` lists (hidden ones and --help left out)."""
    import click

    parts = [f"hybridc {name}"]
    for param in command.params:
        if getattr(param, "hidden", False) or param.name == "help":
            continue
        parts.append(_argument(param) if isinstance(param, click.Argument) else _option(param))
    return " ".join(parts)


def description(command) -> str:
    """The command's help text on one line (click's ``\\b`` markers and line breaks gone)."""
    text = (command.help or "").replace("\b", "")
    return re.sub(r"\s+", " ", text).strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def commands() -> dict[str, object]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import click

    from hybridc.cli import main

    ctx = click.Context(main)
    return {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}


def table(names: tuple[str, ...] | None) -> str:
    found = commands()
    ordered = sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    chosen = names if names is not None else tuple(n for n in ordered if n not in ELSEWHERE)
    rows = ["| command | what it does |", "|---|---|"]
    for name in chosen:
        rows.append(f"| `{_cell(synopsis(name, found[name]))}` | {_cell(description(found[name]))} |")
    return "\n".join(rows) + "\n"


def render(readme: str) -> str:
    for section, names in SECTIONS.items():
        begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
        head, _, rest = readme.partition(begin)
        _, _, tail = rest.partition(end)
        readme = f"{head}{begin}\n{table(names)}{end}{tail}"
    return readme


def main(argv: list[str]) -> int:
    current = README.read_text()
    missing = [s for s in SECTIONS if f"<!-- {s}:begin -->" not in current or f"<!-- {s}:end -->" not in current]
    if missing:
        print(f"{README} has no <!-- {missing[0]}:begin --> ... <!-- {missing[0]}:end --> section", file=sys.stderr)
        return 1
    text = render(current)
    if "--check" in argv:
        if text != current:
            print(f"the command tables in {README} are stale: run scripts/gen_command_table.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(text)
    print(f"wrote the command tables of {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
