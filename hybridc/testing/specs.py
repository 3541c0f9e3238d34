"""Specs as plain data, the form the strategies draw: write them, read them, resolve them. Torch-free.

A spec's data is the dict its YAML holds (``{"hybridc": 1, "name": ..., "components": {...}, ...}``).
``text`` writes it as hybridc writes specs (block YAML, flow mappings for ``init``), ``canonical_data`` gives
the canonical form of any spec (every default explicit), and ``resolve`` runs the front end on data, text or
a file, with relative paths (``from: ./dir``, data files) read from ``base_dir``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Union

from ..spec.emit import dump_yaml, spec_to_data
from ..spec.frontend import ParsedSpec, ResolvedSpec, check_document, parse_document
from ..spec.load import load_file, parse_text

SpecLike = Union[dict, str, Path, ResolvedSpec, ParsedSpec]
FILE = "spec.yaml"  # the file name data and text specs are located in (errors say spec.yaml:LINE:COL)


def text(data: dict[str, Any]) -> str:
    """A spec's data as YAML text (as ``hybridc fmt`` writes: block style, small collections on one line)."""
    return dump_yaml(data)


def _document(spec: dict | str | Path, base_dir: str | Path | None, file: str):
    if isinstance(spec, os.PathLike):
        return load_file(spec)
    source = text(spec) if isinstance(spec, dict) else spec
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return parse_text(source, file=file, path=base / file)


def parse(spec: SpecLike, base_dir: str | Path | None = None, *, file: str = FILE) -> ParsedSpec:
    """The parsed (canonical) spec of data, YAML text or a file (``Path``); raises ``SpecError``."""
    if isinstance(spec, ParsedSpec):
        return spec
    if isinstance(spec, ResolvedSpec):
        raise TypeError("parse() takes a spec's data, text or file; a ResolvedSpec is past parsing")
    return parse_document(_document(spec, base_dir, file))


def resolve(spec: SpecLike, base_dir: str | Path | None = None, *, file: str = FILE) -> ResolvedSpec:
    """The resolved spec (validated; component configs read, no weights) of data, YAML text or a file
    (``Path``), with relative paths read from ``base_dir`` (default: the file's directory, else the current
    one); raises ``SpecError`` with every problem, located in ``file`` for data and text."""
    if isinstance(spec, ResolvedSpec):
        return spec
    if isinstance(spec, ParsedSpec):
        from ..spec.frontend import resolve as resolve_parsed

        return resolve_parsed(spec)
    return check_document(_document(spec, base_dir, file))


def canonical_data(spec: SpecLike, base_dir: str | Path | None = None) -> dict[str, Any]:
    """The canonical form of a spec as data: every default explicit, the order ``fmt`` writes."""
    if isinstance(spec, ResolvedSpec):
        return spec_to_data(spec.spec)
    return spec_to_data(parse(spec, base_dir).spec)


def rows_of(mixture: str) -> list[list[float]] | None:
    """The alpha rows of a ``fixed([[...], ...])`` mixture written in data, else None."""
    if not isinstance(mixture, str) or not mixture.startswith("fixed(") or not mixture.endswith(")"):
        return None
    import ast

    try:
        rows = ast.literal_eval(mixture[len("fixed("):-1])  # numbers and lists only: nothing is evaluated
    except (ValueError, SyntaxError):
        return None
    return [[float(x) for x in row] for row in rows] if isinstance(rows, list) else None


def fixed(rows: list[list[float]]) -> str:
    """A ``fixed(...)`` mixture for alpha rows."""
    return "fixed([" + ", ".join("[" + ", ".join(repr(float(a)) for a in row) + "]" for row in rows) + "])"


def one_hot(data: dict[str, Any], component: str) -> dict[str, Any]:
    """The spec one-hot on ``component``: every block's alpha 1 on it, its embedding and head, causal-lm, no
    budget and no stages (the setting of the one-hot invariant; the rest, seeds included, as in ``data``)."""
    out = copy.deepcopy(data)
    names = list(out["components"])
    if component not in names:
        raise KeyError(f"no component {component!r} in the spec (it has {', '.join(names)})")
    blocks = blocks_of(out)
    row = [1.0 if name == component else 0.0 for name in names]
    hybrid = out.setdefault("hybrid", {})
    hybrid.update(mixture=fixed([row] * blocks), embeddings=component, head=component)
    hybrid.pop("budget", None)
    out["task"] = "causal-lm"
    train = out.get("train")
    if isinstance(train, dict):
        out["train"] = {k: v for k, v in train.items() if k in ("seed", "data_seed")}
    return out


def blocks_of(data: dict[str, Any]) -> int:
    """The number of blocks a spec's data writes (from its first component's ``blocks``)."""
    blocks = next(iter(data["components"].values())).get("blocks", "split(1)")
    if isinstance(blocks, list):
        return len(blocks)
    blocks = str(blocks).strip()
    if blocks.startswith("split("):
        return int(blocks[len("split("):-1])
    return blocks.count("..")
