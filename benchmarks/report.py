"""Writing a benchmark's results into benchmarks/README.md, between its own markers."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, key: str, title: str, body: str) -> None:
    """Replace the text between ``<!-- key:begin -->`` and ``<!-- key:end -->`` in ``path`` with ``body``
    (appending a ``## title`` section with the markers when they are missing)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{body}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += ("\n" if text else "") + f"## {title}\n\n{block}\n"
    path.write_text(text)
