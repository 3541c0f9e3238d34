"""``text(source, block, field, valid, test)``: causal-LM blocks cut from a token stream.

Documents come from a local ``.txt`` file (the whole file is one document), a ``.jsonl`` file (one
document per record, its ``field`` key), a directory (every ``*.txt`` and ``*.jsonl`` directly inside,
in sorted order) or ``hf:<dataset>`` (the ``train`` split, column ``field``); files are read through
``datasets`` (see ``records.py``). Each document is tokenized, followed by the tokenizer's eos token
(when it has one), and the documents are concatenated. The stream is cut into non-overlapping blocks
of ``block`` tokens (the remainder is dropped); labels equal the inputs (the model shifts them).
Splits are made of whole blocks, so no token is in two splits (a document may straddle two blocks).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..spec.resolve import resolve_path
from .context import Examples, SourceContext
from .dataset import Split
from .records import Records, read_hub, read_local

TEXT_SUFFIXES = (".txt", ".jsonl")
MIN_BLOCKS = 3


def build_text(ctx: SourceContext) -> Examples:
    """input_ids = labels: (N, block) long, N = tokens // block; no attention mask."""
    tok = ctx.require_tokenizer()
    block = int(ctx.arg("block"))
    files = local_files(ctx)
    documents = read_documents(ctx, files)
    eos = [tok.eos_id] if tok.eos_id is not None else []
    pieces = [torch.tensor(ids + eos, dtype=torch.long) for ids in tok.encode_batch(documents)]
    stream = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long)
    n_blocks = stream.numel() // block
    if n_blocks < MIN_BLOCKS:
        raise ctx.error(
            f"{ctx.short} gives only {stream.numel()} tokens, fewer than {MIN_BLOCKS} blocks of {block}",
            f"use a smaller block= (at most {max(stream.numel() // MIN_BLOCKS, 1)}) or more text",
        )
    ids = stream[: n_blocks * block].view(n_blocks, block).clone()
    return Examples(Split(ids, ids.clone()), "sequences", files or ())


def local_files(ctx: SourceContext) -> tuple[Path, ...] | None:
    """The local files ``ctx``'s source reads, in order (a file, or a directory's); None for ``hf:`` data."""
    source = str(ctx.arg("source"))
    if source.startswith("hf:"):
        return None
    path = resolve_path(ctx.base_dir, source)
    if not path.exists():
        raise ctx.error(f"no such data file '{source}'", f"paths are relative to the spec file ({ctx.base_dir})")
    return tuple(_text_files(ctx, path, source))


def read_documents(ctx: SourceContext, files: tuple[Path, ...] | None) -> list[str]:
    """The documents of ``ctx``'s source, in order: of ``files`` (``local_files``), or of its Hub dataset."""
    field = str(ctx.arg("field"))
    if files is None:
        return _field_values(ctx, read_hub(str(ctx.arg("source"))[3:], [field]), field)
    documents: list[str] = []
    for file in files:
        if file.suffix.lower() == ".txt":
            documents.extend(str(t) for t in read_local(file).columns.get("text", []))
        else:
            documents.extend(_field_values(ctx, read_local(file), field))
    return documents


def _text_files(ctx: SourceContext, path: Path, source: str) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise ctx.error(f"directory '{source}' has no .txt or .jsonl files", "text() reads the files directly inside it")
        return files
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise ctx.error(f"text() reads .txt or .jsonl files (or a directory of them), not '{path.suffix or path.name}'",
                        "convert the data to .jsonl with one {\"text\": ...} record per document")
    return [path]


def _field_values(ctx: SourceContext, records: Records, field: str) -> list[str]:
    if len(records) == 0:
        return []
    if field not in records.columns:
        raise ctx.error(f"the records of {records.origin} have no field '{field}'",
                        f"set field= to one of: {', '.join(records.fields) or '(none)'}")
    values = records.columns[field]
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ctx.error(f"record {i + 1} of {records.origin} has {type(value).__name__} in '{field}', not text",
                            f"every record needs a string '{field}'")
    return values
