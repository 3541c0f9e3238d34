#!/usr/bin/env python
"""Regenerate the README's table of supported families from the architecture table.

The rows come from ``hybridc.components.architectures.ARCHITECTURES`` (torch-free): the family name a spec
uses, its transformers model type and class, what its layers hold and the table's notes. The README keeps
the table between ``<!-- families:begin -->`` and ``<!-- families:end -->``; a test fails when it drifts.

Usage: ``python scripts/gen_family_table.py [--check]`` (``--check``: exit 1 if the README is stale).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- families:begin -->", "<!-- families:end -->"


def table() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from hybridc.components.architectures import ARCHITECTURES, kind, notes

    rows = ["| family | model type | transformers class | layers | notes |", "|---|---|---|---|---|"]
    for name in sorted(ARCHITECTURES):
        a = ARCHITECTURES[name]
        rows.append(f"| `{name}` | `{a.model_type}` | `{a.model_class}` | {kind(a)} | {notes(a)} |")
    return "\n".join(rows) + "\n"


def render(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main(argv: list[str]) -> int:
    current = README.read_text()
    if BEGIN not in current or END not in current:
        print(f"{README} has no {BEGIN} ... {END} section", file=sys.stderr)
        return 1
    text = render(current)
    if "--check" in argv:
        if text != current:
            print(f"the family table in {README} is stale: run scripts/gen_family_table.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(text)
    print(f"wrote the family table of {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
