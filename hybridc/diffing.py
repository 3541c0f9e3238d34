"""``hybridc diff`` and its git integration (diff driver, textconv, ``git-setup``). Torch-free."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .errors import SpecError
from .spec.diff import Change, CostDelta, diff_specs, graph_delta, try_resolve
from .spec.frontend import ParsedSpec, resolve
from .spec.load import parse_text
from .spec.frontend import parse_document
from .spec.sources import git_root, parse_source

STYLE = {"added": "green", "removed": "red", "changed": "yellow"}
MARK = {"added": "+", "removed": "-", "changed": "~"}


def compare(pa: ParsedSpec, pb: ParsedSpec, with_graph: bool) -> tuple[list[Change], list[CostDelta]]:
    if with_graph:  # the graph needs configs: report why they cannot be read
        ra, rb = resolve(pa), resolve(pb)
    else:
        ra, rb = try_resolve(pa), try_resolve(pb)
    changes = diff_specs(pa.spec, pb.spec, ra, rb)
    deltas = [d for d in graph_delta(ra, rb) if d.before != d.after] if with_graph else []
    return changes, deltas


def render_text(changes: list[Change], deltas: list[CostDelta], console: Console, header: str | None = None) -> None:
    if header:
        console.print(f"[bold]{escape(header)}[/bold]")
    if not changes and not deltas:
        console.print("no semantic change")
        return
    for c in changes:
        console.print(f"[{STYLE[c.kind]}]{MARK[c.kind]} {escape(c.render())}[/{STYLE[c.kind]}]")
    if deltas:
        console.print("[bold]consequence (configs only):[/bold]")
        for d in deltas:
            console.print(f"  {escape(d.render())}")


def _console(color: bool | None) -> Console:
    return Console(force_terminal=color if color else None, no_color=color is False, highlight=False,
                   soft_wrap=True)


def run_diff(a: str, b: str, *, with_graph: bool = False, fmt: str = "text", color: bool | None = None) -> int:
    """Print the semantic diff; returns the exit status (0 same, 1 different)."""
    pa, pb = parse_source(a), parse_source(b)
    changes, deltas = compare(pa, pb, with_graph)
    if fmt == "json":
        print(json.dumps({
            "a": a, "b": b, "same": not changes and not deltas,
            "changes": [c.to_json() for c in changes],
            "graph": [{"group": d.group, "before": d.before, "after": d.after} for d in deltas] if with_graph else None,
        }, indent=2))
    else:
        render_text(changes, deltas, _console(color), header=f"--- {a}\n+++ {b}")
    return 1 if changes or deltas else 0


def _parse_blob(file: str, display: str, base: Path) -> ParsedSpec | None:
    if file == "/dev/null":
        return None
    return parse_document(parse_text(Path(file).read_bytes(), file=display, path=base / Path(display).name))


def run_git_driver(args: tuple[str, ...], *, with_graph: bool = False, color: bool | None = None) -> None:
    """git's external diff interface: path old-file old-hex old-mode new-file new-hex new-mode [...]."""
    if len(args) < 7:
        raise SystemExit("hybridc diff --git-driver expects the 7 arguments git passes")
    path, old, new = args[0], args[1], args[4]
    root = git_root() or Path.cwd()
    base = (root / path).parent
    console = _console(color)
    header = f"hybridc diff a/{path} b/{path}"
    try:
        pa, pb = _parse_blob(old, f"a/{path}", base), _parse_blob(new, f"b/{path}", base)
    except SpecError as err:
        console.print(f"[bold]{escape(header)}[/bold]\n{escape(err.render())}")
        return
    if pa is None or pb is None:
        console.print(f"[bold]{escape(header)}[/bold]\n{'new' if pa is None else 'deleted'} spec file")
        return
    try:
        changes, deltas = compare(pa, pb, with_graph)
    except SpecError as err:
        console.print(f"[bold]{escape(header)}[/bold]\n{escape(err.render())}")
        return
    render_text(changes, deltas, console, header=header)


def _hybridc_command() -> str:
    found = shutil.which("hybridc")
    return found if found else f"{sys.executable} -m hybridc"


def setup_git(patterns: list[str], *, global_: bool = False) -> list[str]:
    """Write the .gitattributes lines and the diff.hybridc driver config; returns what was done."""
    root = git_root()
    if root is None:
        raise SpecError([_not_a_repo()])
    done = []
    attributes = root / ".gitattributes"
    lines = attributes.read_text().splitlines() if attributes.exists() else []
    added = [f"{p} diff=hybridc" for p in patterns if f"{p} diff=hybridc" not in lines]
    if added:
        text = "\n".join(lines + added) + "\n"
        attributes.write_text(text)
        done += [f".gitattributes: {line}" for line in added]
    command = _hybridc_command()
    scope = ["--global"] if global_ else []
    for key, value in (("diff.hybridc.command", f"{command} diff --git-driver"),
                       ("diff.hybridc.textconv", f"{command} fmt --textconv"),
                       ("diff.hybridc.xfuncname", "^[a-z_]+:")):
        subprocess.run(["git", "config", *scope, key, value], cwd=root, check=True)
        done.append(f"git config {' '.join(scope + [key])} \"{value}\"")
    done.append("git diff now shows semantic diffs of these files; `git log -p --ext-diff` too "
                "(plain `git log -p` shows their canonical form)")
    return done


def _not_a_repo():
    from .errors import Diagnostic, Location

    return Diagnostic(Location(str(Path.cwd()), 1, 1), "not inside a git repository", "run git-setup in your repository")
