"""Comments of a spec file, attached to the key paths they annotate (so ``fmt`` can keep them).

A comment on its own line belongs to the next key or list item below it; a comment after a value
belongs to that line's key. Comments before the first key form the header, comments after the
last key the trailer. Comments inside flow collections are attached to their line's outer key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .tree import Mapping, Node, Sequence

Path = tuple[Any, ...]


@dataclass
class Comments:
    header: tuple[str, ...] = ()
    before: dict[Path, list[str]] = field(default_factory=dict)
    after: dict[Path, str] = field(default_factory=dict)
    trailer: tuple[str, ...] = ()


def _comment_start(line: str) -> int | None:
    """Index of the '#' that starts a comment in ``line``, or None (ignores '#' inside quotes)."""
    quote = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote == '"' and ch == "\\":
            i += 2  # an escape: the next character (a quote, say) is part of the string
            continue
        if quote == "'" and ch == "'" and line[i + 1:i + 2] == "'":
            i += 2  # '' is a quote inside a single-quoted string
            continue
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"') and (i == 0 or line[i - 1] in " \t[{,:-"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
        i += 1
    return None


def _line_paths(node: Node, path: Path, out: dict[int, Path]) -> None:
    if isinstance(node, Mapping):
        for key, value in node:
            out.setdefault(key.loc.line, path + (key.value,))
            _line_paths(value, path + (key.value,), out)
    elif isinstance(node, Sequence):
        for i, item in enumerate(node):
            out.setdefault(item.loc.line, path + (i,))
            _line_paths(item, path + (i,), out)


def extract_comments(text: str, root: Node) -> Comments:
    paths: dict[int, Path] = {}
    _line_paths(root, (), paths)
    first_line = min(paths) if paths else None
    last_line = max(paths) if paths else None
    result = Comments()
    header: list[str] = []
    pending: list[str] = []
    trailer: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        start = _comment_start(line)
        if start is None:
            if pending and line.strip() == "" and first_line is not None and number < first_line:
                header.extend(pending)
                pending = []
            path = paths.get(number)
            if path is not None and pending:
                result.before.setdefault(path, []).extend(pending)
                pending = []
            continue
        comment = line[start:].rstrip()
        if line[:start].strip():
            path = paths.get(number)
            if path is not None:
                result.after[path] = comment
            continue
        if first_line is not None and number < first_line and not pending and not header and _is_schema(comment):
            header.append(comment)
            continue
        if last_line is not None and number > last_line:
            trailer.append(comment)
        else:
            pending.append(comment)
    if pending and first_line is None:
        header.extend(pending)
    result.header = tuple(header)
    result.trailer = tuple(trailer + (pending if first_line is not None and not trailer and pending else []))
    return result


def _is_schema(comment: str) -> bool:
    return "yaml-language-server" in comment
