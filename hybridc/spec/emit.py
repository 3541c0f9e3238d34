"""Canonical YAML: ``Spec`` -> ordered data -> text, optionally with the input's comments.

The canonical form has a fixed key order, every default written out, single-spaced expressions
and the same quoting everywhere, so ``fmt(fmt(x)) == fmt(x)`` and two specs that mean the same
thing print the same.
"""

from __future__ import annotations

import re
from typing import Any

from .canonical import thaw
from .comments import Comments
from .expr import render_value
from .load import resolve_plain
from .model import Component, DataSource, Spec, Stage
from .signatures import DATA_SOURCES

def render_data(data: DataSource) -> str:
    """``text(corpus.txt, block=512, ...)``: required parameters positional, the rest by name."""
    sig = DATA_SOURCES.get(data.name)
    parts = []
    for key, value in data.args:
        if value is None:
            continue
        param = sig.param(key) if sig else None
        parts.append(render_value(value) if param is not None and param.required else f"{key}={render_value(value)}")
    return f"{data.name}({', '.join(parts)})"


def _component(c: Component) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if c.source.kind == "init":
        out["init"] = {k: thaw(v) for k, v in c.source.init}
    else:
        out["from"] = str(c.source)
    out["blocks"] = str(c.blocks)
    out["trust_remote_code"] = c.trust_remote_code
    if c.source.kind != "init":
        out["vocab"] = c.vocab
    return out


def _number(x: float) -> int | float:
    """A whole float as an int (``epochs: 2``, not ``2.0``); reading it back gives the same float."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _stage(s: Stage) -> dict[str, Any]:
    out: dict[str, Any] = {"name": s.name, "kind": s.kind}
    if s.init is not None:
        out["init"] = s.init
    if not s.trains:
        return out
    out["train"] = list(s.train)
    out["data"] = render_data(s.data) if s.data is not None else None
    if s.search is not None:
        out["search"] = str(s.search)
    if s.distill is not None:
        out["distill"] = str(s.distill)
    if s.epochs is not None:  # the stage's length is steps or epochs, never both
        out["epochs"] = _number(s.epochs)
    else:
        out["steps"] = s.steps
    out.update(
        batch_size=s.batch_size, grad_accum=s.grad_accum, lr=s.lr, weight_decay=s.weight_decay,
        betas=list(s.betas), warmup=s.warmup, schedule=s.schedule, grad_clip=s.grad_clip, eval_every=s.eval_every,
    )
    return out


def spec_to_data(spec: Spec) -> dict[str, Any]:
    """The canonical spec as ordered plain data (what ``fmt`` prints and ``spec.lock.yaml`` embeds)."""
    projectors = dict(spec.hybrid.projectors)
    kinds = set(projectors.values())
    return {
        "hybridc": spec.version,
        "name": spec.name,
        "tokenizer": spec.tokenizer,
        "components": {c.name: _component(c) for c in spec.components},
        "hybrid": {
            "width": "max" if spec.hybrid.width is None else spec.hybrid.width,
            "projector": kinds.pop() if len(kinds) == 1 else projectors,
            "embeddings": spec.hybrid.embeddings,
            "head": spec.hybrid.head,
            "mixture": str(spec.hybrid.mixture),
            **({"budget": {spec.hybrid.budget.measure: spec.hybrid.budget.amount()}} if spec.hybrid.budget else {}),
        },
        "task": str(spec.task),
        "train": {"seed": spec.train.seed,
                  **({"data_seed": spec.train.data_seed} if spec.train.data_seed is not None else {}),
                  "checkpoint_every": spec.train.checkpoint_every,
                  "baselines": spec.train.baselines, "stages": [_stage(s) for s in spec.train.stages]},
    }


def _is_flow(path: tuple, value: Any) -> bool:
    """Small collections written on one line: lists of scalars, init configs, projector maps."""
    if isinstance(value, list):
        return not value or not all(isinstance(v, dict) for v in value)
    if isinstance(value, dict):
        return not value or (len(path) == 3 and path[0] == "components" and path[2] == "init") or path == (
            "hybrid", "projector") or path == ("hybrid", "budget")
    return False


_PLAIN_UNSAFE_START = set("-?:,[]{}#&*!|>'\"%@`")


def scalar(value: Any, flow: bool = False) -> str:
    """A scalar as YAML text that our loader reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return render_value(value)
    text = str(value)
    plain_ok = (
        text
        and text == text.strip()
        and text[0] not in _PLAIN_UNSAFE_START
        and ": " not in text
        and " #" not in text
        and not text.endswith(":")
        and "\n" not in text
        and "\t" not in text
        and text.isprintable()
        and resolve_plain(text) == text
        and not (flow and re.search(r"[,\[\]{}]", text))
    )
    if plain_ok:
        return text
    return '"' + "".join(_escape(ch) for ch in text) + '"'


_QUOTED_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def _escape(ch: str) -> str:
    """One character inside a double-quoted YAML scalar: control and other unprintable characters
    (which a YAML reader rejects or folds) as \\x, \\u or \\U escapes."""
    if ch in _QUOTED_ESCAPES:
        return _QUOTED_ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k, True)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return scalar(value, flow=True)


def dump_yaml(data: dict[str, Any], comments: Comments | None = None, header: tuple[str, ...] = ()) -> str:
    """Write canonical data as block YAML, placing ``comments`` at the paths they belong to."""
    lines: list[str] = list(header)
    comments = comments or Comments()

    def emit_comments(path, indent: str) -> None:
        for text in comments.before.get(path, ()):
            lines.append(f"{indent}{text}")

    def trailing(path) -> str:
        text = comments.after.get(path)
        return f"  {text}" if text else ""

    def mapping(value: dict, path: tuple, indent: str, first_prefix: str | None = None) -> None:
        for n, (key, item) in enumerate(value.items()):
            p = path + (key,)
            prefix = first_prefix if (n == 0 and first_prefix is not None) else indent
            flow = _is_flow(p, item)
            if not path and n > 0 and isinstance(item, (dict, list)) and not flow:
                lines.append("")
            emit_comments(p, indent)
            k = scalar(key)
            # a list item's own trailing comment ("- {name: align, ...}  # note") goes on its first line
            tail = trailing(p) or (trailing(path) if n == 0 and first_prefix is not None else "")
            if isinstance(item, dict) and not flow:
                lines.append(f"{prefix}{k}:{tail}")
                mapping(item, p, indent + "  ")
            elif isinstance(item, list) and not flow:
                lines.append(f"{prefix}{k}:{tail}")
                for i, entry in enumerate(item):
                    emit_comments(p + (i,), indent + "  ")
                    mapping(entry, p + (i,), indent + "    ", first_prefix=indent + "  - ")
            elif flow:
                lines.append(f"{prefix}{k}: {_flow(item)}{tail}")
            else:
                lines.append(f"{prefix}{k}: {scalar(item)}{tail}")

    mapping(data, (), "")
    lines.extend(comments.trailer)
    return "\n".join(lines) + "\n"


def format_spec(spec: Spec, comments: Comments | None = None) -> str:
    """The canonical text of a spec; ``comments`` (from the input) are kept where their key survives."""
    comments = comments or Comments()
    return dump_yaml(spec_to_data(spec), comments, header=comments.header)
