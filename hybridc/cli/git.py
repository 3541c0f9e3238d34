"""``hybridc diff`` and its git integration (diff driver, textconv, ``git-setup``). Torch-free."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..errors import HybridcError, SpecError
from ..graph.diff import Change, CostDelta, diff_specs, graph_delta, try_resolve
from ..spec.frontend import ParsedSpec, parse_document, resolve
from ..spec.load import parse_text, regular_file_bytes
from ..spec.sources import git_root, parse_source
from ..io.terminal import PipeConsole

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
    return PipeConsole(force_terminal=color if color else None, no_color=color is False, highlight=False,
                   soft_wrap=True)


def text_diff(old: bytes | None, new: bytes | None, a_label: str, b_label: str) -> list[str]:
    """A unified diff of two files' bytes, each line without its newline (``None``: no such file, as
    /dev/null); for a file that is not UTF-8 text, git's one line ``Binary files A and B differ``."""
    texts = []
    for data in (old, new):
        try:
            text = (data or b"").decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\0" in text:
            return [] if old == new else [f"Binary files {a_label} and {b_label} differ"]
        texts.append(text)
    lines = []
    for line in difflib.unified_diff(texts[0].splitlines(keepends=True), texts[1].splitlines(keepends=True),
                                     a_label, b_label, lineterm="\n"):
        lines.append(line.rstrip("\n").rstrip("\r") if line.endswith("\n") else line)
        if not line.endswith("\n"):  # as git shows it
            lines.append("\\ No newline at end of file")
    return lines


def _print_text_diff(lines: list[str], console: Console) -> None:
    """Plain lines (no markup, tabs and spaces kept), coloured as git colours them on a terminal."""
    color = console.is_terminal and not console.no_color
    codes = {"---": "1", "+++": "1", "@@": "36", "-": "31", "+": "32"}
    for line in lines:
        code = next((c for prefix, c in codes.items() if line.startswith(prefix)), None) if color else None
        console.file.write(f"\x1b[{code}m{line}\x1b[0m\n" if code else line + "\n")
    console.file.flush()


def _raw_source(ref: str) -> bytes | None:
    """The bytes of ``ref`` (a path or git:REV:path) when it can be read, else ``None``: a spec that does
    not parse is still shown as text; one that cannot be read at all stays an error."""
    if not ref.startswith("git:"):
        return regular_file_bytes(ref)
    rev, _, path = ref[4:].partition(":")
    root = git_root()
    if not rev or not path or rev.startswith("-") or root is None:  # parse_source says why
        return None
    try:
        relative = (Path.cwd() / path).resolve().relative_to(root) if not path.startswith("/") else Path(path)
    except ValueError:
        return None
    done = subprocess.run(["git", "show", "--end-of-options", f"{rev}:{relative.as_posix()}"], cwd=root,
                          capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def _side(ref: str) -> tuple[ParsedSpec | None, bytes | None, SpecError | None]:
    """``ref`` parsed, or its bytes and why it does not parse; raises when it cannot be read."""
    try:
        return parse_source(ref), None, None
    except SpecError as err:
        raw = _raw_source(ref)
        if raw is None:
            raise
        return None, raw, err


class TextDiffShown(SpecError):
    """A spec given to ``hybridc diff`` is invalid: its errors, after the text diff that was printed."""

    def render(self) -> str:
        return super().render() + " (so the text diff is shown instead of the semantic one)"


def run_diff(a: str, b: str, *, with_graph: bool = False, fmt: str = "text", color: bool | None = None) -> int:
    """Print the semantic diff; returns the exit status (0 same, 1 different).

    When either spec is invalid (or with ``--graph``, cannot be resolved), prints a plain text diff of the
    two files instead and raises the ``SpecError`` (exit 2, the errors rendered by the CLI on stderr)."""
    (pa, raw_a, err_a), (pb, raw_b, err_b) = _side(a), _side(b)
    failed = [e for e in (err_a, err_b) if e is not None]
    if not failed:
        assert pa is not None and pb is not None
        try:
            changes, deltas = compare(pa, pb, with_graph)
        except SpecError as err:
            failed = [err]
    if failed:
        raw_a = raw_a if raw_a is not None else _raw_source(a)
        raw_b = raw_b if raw_b is not None else _raw_source(b)
        lines = text_diff(raw_a, raw_b, a, b)
        diagnostics = [d for e in failed for d in e.diagnostics]
        if fmt == "json":
            print(json.dumps({
                "a": a, "b": b, "same": raw_a == raw_b, "changes": None, "graph": None, "text_diff": lines,
                "errors": [{"location": str(d.location), "message": d.message, "hint": d.hint} for d in diagnostics],
            }, indent=2))
        else:
            _print_text_diff(lines or [f"--- {a}", f"+++ {b}", "no text change"], _console(color))
        raise TextDiffShown(diagnostics)
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


def _read_blob(file: str) -> bytes | None:
    if file == "/dev/null":
        return None
    try:
        return Path(file).read_bytes()
    except OSError:
        return None


def run_git_driver(args: tuple[str, ...], *, with_graph: bool = False, color: bool | None = None) -> None:
    """git's external diff interface: path old-file old-hex old-mode new-file new-hex new-mode [new-path
    rename-info]. Always exits 0 (git stops at a driver that fails): when a side is not a valid spec, the
    output is a plain unified diff of the two files, preceded by one ``# hybridc: ...`` line per error
    (in the output, not on stderr: ``git diff`` and ``git log -p`` page only what the driver prints).

    When git's reader goes away (``git diff | head``), the rest is dropped and the driver still exits 0:
    a driver that fails makes git stop with "external diff died"; git itself then ends as a pipe's writer
    does."""
    try:
        _git_driver(args, with_graph=with_graph, color=color)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # not a real file (tests' captured streams)
            pass
        os.close(devnull)


def _git_driver(args: tuple[str, ...], *, with_graph: bool, color: bool | None) -> None:
    console = _console(color)
    if len(args) == 1:  # git passes only the path of an unmerged file
        console.print(f"[bold]{escape(f'hybridc diff {args[0]}')}[/bold]\n* unmerged path (resolve the conflict first)")
        return
    if len(args) < 7:
        raise SystemExit("hybridc diff --git-driver expects the 7 arguments git passes")
    path, old, new = args[0], args[1], args[4]
    new_path = args[7] if len(args) >= 9 else path  # a rename: git adds the new path and the similarity
    root = git_root() or Path.cwd()
    a_label, b_label = f"a/{path}", f"b/{new_path}"
    header = f"hybridc diff {a_label} {b_label}"
    notes: list[str] = []
    pa = pb = None
    for side, file, label in (("old", old, a_label), ("new", new, b_label)):
        try:
            parsed = _parse_blob(file, label, (root / (path if side == "old" else new_path)).parent)
        except (HybridcError, OSError) as err:
            notes += [f"# hybridc: {side} spec is invalid: {line}" for line in _error_lines(err)]
            continue
        if side == "old":
            pa = parsed
        else:
            pb = parsed
    if not notes and (pa is None or pb is None):
        console.print(f"[bold]{escape(header)}[/bold]\n{'new' if pa is None else 'deleted'} spec file")
        return
    if not notes:
        assert pa is not None and pb is not None
        try:
            changes, deltas = compare(pa, pb, with_graph)
        except HybridcError as err:
            notes += [f"# hybridc: cannot compare the specs: {line}" for line in _error_lines(err)]
        else:
            render_text(changes, deltas, console, header=header)
            return
    console.print(f"[bold]{escape(header)}[/bold]")
    lines = text_diff(_read_blob(old), _read_blob(new), "/dev/null" if old == "/dev/null" else a_label,
                      "/dev/null" if new == "/dev/null" else b_label)
    if not lines:
        notes.append("# hybridc: no text change")
    elif not lines[0].startswith("Binary files "):
        notes.append("# hybridc: showing a text diff")
    _print_text_diff(notes + lines, console)


def _error_lines(err: Exception) -> list[str]:
    if isinstance(err, SpecError):
        return [d.render() for d in err.diagnostics]
    return [" ".join((err.render() if isinstance(err, HybridcError) else f"error: {err}").split())]


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
    from ..errors import Diagnostic, Location

    return Diagnostic(Location(str(Path.cwd()), 1, 1), "not inside a git repository", "run git-setup in your repository")
