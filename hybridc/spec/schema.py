"""Stage 2 of the front end: structural checks of the YAML tree against the published JSON Schema.

Every schema violation becomes a located ``Diagnostic`` with a readable message; unknown keys get
a "did you mean" hint. Non-finite numbers (.nan, .inf) are rejected here too.
"""

from __future__ import annotations

import difflib
import json
import math
from functools import cache
from importlib import resources
from typing import Any

from ..errors import Diagnostic
from .expr import MAX_INT
from .tree import Mapping, Node, Scalar, Sequence, describe, find

_TYPE_NAMES = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "true or false", "null": "null",
}


@cache
def schema() -> dict[str, Any]:
    """The spec's JSON Schema (draft 2020-12), as published in schemas/hybrid-spec.schema.json."""
    return json.loads(resources.files("hybridc.spec").joinpath("schema.json").read_text())


@cache
def _validator():
    from jsonschema import Draft202012Validator, validators

    # JSON Schema counts 4.0 as an integer; a spec that writes layers: 4.0 or steps: 5.0 means a whole
    # number but would keep the float in its canonical form, so integers must be written as integers.
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return validators.extend(Draft202012Validator, type_checker=checker)(schema())


def did_you_mean(word: str, choices) -> str | None:
    """A "did you mean" hint, or None."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _path_text(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the spec"


def _field(path) -> str:
    names = [p for p in path if isinstance(p, str)]
    return f"'{_path_text(path)}'" if names else "the spec"


def _resolve_ref(sub: dict[str, Any]) -> dict[str, Any]:
    ref = sub.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return schema()["$defs"][ref.split("/")[-1]]
    return sub


def _expected(sub: dict[str, Any]) -> str:
    sub = _resolve_ref(sub)
    if "x-expected" in sub:
        return sub["x-expected"]
    if "enum" in sub:
        return "one of " + ", ".join(str(v) for v in sub["enum"])
    if "const" in sub:
        return repr(sub["const"])
    types = sub.get("type")
    if isinstance(types, list):
        return " or ".join(_TYPE_NAMES.get(t, t) for t in types)
    return _TYPE_NAMES.get(types, "a valid value")


def _diagnose(root: Node, err) -> Diagnostic:
    path = tuple(err.absolute_path)
    node = find(root, path)
    node = root if node is None else node  # (an empty list is falsy)
    loc = node.loc
    value = err.instance
    validator = err.validator
    where = _field(path)
    if validator == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extras = [k for k in value if k not in allowed] if isinstance(value, dict) else []
        key = extras[0] if extras else "?"
        key_node = node.key_node(key) if isinstance(node, Mapping) else None
        hint = did_you_mean(key, allowed) or ("known keys: " + ", ".join(allowed) if allowed else None)
        where_in = "at the top level" if not path else f"in {where}"
        return Diagnostic(key_node.loc if key_node else loc, f"unknown key '{key}' {where_in}", hint)
    if validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return Diagnostic(loc, f"{where} is missing the required key '{missing}'",
                          f"add '{missing}: ...'")
    if validator == "propertyNames" or (validator == "pattern" and "propertyNames" in err.relative_schema_path):
        # jsonschema reports a bad property name as a 'pattern' error on the mapping, with the name as
        # its instance: point at that key, not at the mapping
        bad = value if isinstance(value, str) else next((k for k in value if not _name_ok(k)), None) \
            if isinstance(value, dict) else None
        key_node = node.key_node(bad) if isinstance(node, Mapping) and bad is not None else None
        return Diagnostic(key_node.loc if key_node else loc, f"invalid name '{bad}' in {where}",
                          "names start with a letter or '_' and use letters, digits, '_' and '-'")
    if validator in ("anyOf", "oneOf"):
        deeper = [e for e in err.context if len(e.absolute_path) > len(path)]
        if deeper:  # the value has the right shape; report what is wrong inside it
            return _diagnose(root, max(deeper, key=lambda e: len(e.absolute_path)))
        # a branch of the right type that fails on something else (an item twice, a bound): say that
        shaped = [e for e in err.context if e.validator not in ("type", "enum", "const", "anyOf", "oneOf")]
        if shaped:
            return _diagnose(root, shaped[0])
        enums = [v for sub in err.schema.get(validator, []) for v in _resolve_ref(sub).get("enum", [])]
        hint = did_you_mean(value, enums) if isinstance(value, str) and enums else None
        return Diagnostic(loc, f"{where} must be {_expected(err.schema)}, not {describe(value)}"
                          + (f" ({_show(value)})" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""),
                          hint)
    if validator == "type":
        return Diagnostic(loc, f"{where} must be {_expected(err.schema)}, not {describe(value)}"
                          + (f" ({_show(value)})" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""))
    if validator == "enum":
        hint = did_you_mean(value, err.validator_value) if isinstance(value, str) else None
        return Diagnostic(loc, f"{where} must be one of {', '.join(map(str, err.validator_value))}, not {_show(value)}", hint)
    if validator == "const":
        return Diagnostic(loc, f"{where} must be {err.validator_value!r}, not {_show(value)}",
                          "this hybridc reads spec version 1")
    if validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return Diagnostic(loc, f"{where} must be {words[validator]} {err.validator_value}, not {_show(value)}")
    if validator == "pattern":
        return Diagnostic(loc, f"{where} {_show(value)} is not a valid name",
                          "use letters, digits, '.', '_' and '-', starting with a letter or digit")
    if validator in ("minItems", "maxItems"):
        n = len(value)
        bound = "at least" if validator == "minItems" else "at most"
        return Diagnostic(loc, f"{where} has {n} item{'s' * (n != 1)}; it takes {bound} {err.validator_value}")
    if validator == "minProperties":
        return Diagnostic(loc, f"{where} is empty", err.schema.get("x-empty", "name at least one component"))
    if validator == "minLength":
        return Diagnostic(loc, f"{where} is empty")
    if validator == "uniqueItems":
        return Diagnostic(loc, f"{where} lists an item twice")
    return Diagnostic(loc, f"{where}: {err.message}")


def _name_ok(key: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key))


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _non_finite(node: Node, problems: list[Diagnostic], path: tuple = (), paths: list | None = None) -> None:
    """Problems for numbers no spec can mean (.nan, .inf, beyond 2**63); ``paths`` collects where."""
    if isinstance(node, Scalar):
        before = len(problems)
        if isinstance(node.value, int) and not isinstance(node.value, bool) and abs(node.value) > MAX_INT:
            problems.append(Diagnostic(node.loc, f"the number {_short(node.raw)} is too large", "use an ordinary number"))
        elif isinstance(node.value, float) and not math.isfinite(node.value):
            if any(word in node.raw.lower() for word in ("nan", "inf")):
                problems.append(Diagnostic(node.loc, f"{_short(node.raw)} is not a finite number",
                                           "use an ordinary number"))
            else:  # an ordinary-looking number too large for a float (1e999, hundreds of digits)
                problems.append(Diagnostic(node.loc, f"the number {_short(node.raw)} is too large",
                                           "use an ordinary number"))
        if paths is not None and len(problems) > before:
            paths.append(path)
    elif isinstance(node, Mapping):
        for key, value in node:
            _non_finite(value, problems, path + (key.value,), paths)
    elif isinstance(node, Sequence):
        for i, item in enumerate(node):
            _non_finite(item, problems, path + (i,), paths)


def check_schema(root: Node) -> list[Diagnostic]:
    """Every structural problem of the tree, located (empty list: the tree fits the schema)."""
    problems: list[Diagnostic] = []
    _non_finite(root, problems)
    data = root.to_python()
    errors = sorted(_validator().iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    seen_paths: set[tuple] = set()
    flagged = {d.location for d in problems}
    for err in errors:
        path = tuple(err.absolute_path)
        node = find(root, path)
        if node is not None and node.loc in flagged:
            continue
        # One message per value: a deeper error makes its parents' anyOf noise redundant.
        if err.validator in ("anyOf", "oneOf") and any(p[: len(path)] == path and len(p) > len(path) for p in seen_paths):
            continue
        key = (path, err.validator) if err.validator in ("additionalProperties", "required") else path
        if key in seen_paths and err.validator not in ("additionalProperties", "required"):
            continue
        seen_paths.add(key)
        problems.append(_diagnose(root, err))
    # additionalProperties reports one error per mapping; report every unknown key.
    return _expand_unknown_keys(root, problems)


def _expand_unknown_keys(root: Node, problems: list[Diagnostic]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for d in problems:
        out.append(d)
    extra: list[Diagnostic] = []
    for err in _validator().iter_errors(root.to_python()):
        if err.validator != "additionalProperties" or not isinstance(err.instance, dict):
            continue
        node = find(root, tuple(err.absolute_path))
        allowed = list(err.schema.get("properties", {}))
        keys = [k for k in err.instance if k not in allowed]
        for key in keys[1:]:
            key_node = node.key_node(key) if isinstance(node, Mapping) else None
            where = "at the top level" if not err.absolute_path else f"in {_field(tuple(err.absolute_path))}"
            extra.append(Diagnostic(key_node.loc if key_node else node.loc, f"unknown key '{key}' {where}",
                                    did_you_mean(key, allowed) or ("known keys: " + ", ".join(allowed))))
    return out + extra


# ---- going on past schema errors ---------------------------------------------------------------
# Keys that no later check reads (nothing else in the spec depends on their value): when one of them is
# wrong, the rest of the spec can still be checked with the key left out (its default in its place).
# "*" is any key or index.
_LEAVES = (
    ("train", "seed"), ("train", "data_seed"), ("train", "checkpoint_every"), ("train", "baselines"),
    ("hybrid", "width"), ("hybrid", "projector"),
    *(("train", "stages", "*", key) for key in (
        "train", "search", "steps", "epochs", "batch_size", "grad_accum", "lr", "weight_decay", "betas", "warmup",
        "schedule", "grad_clip", "eval_every", "init")),
)


def _leaf_of(path: tuple) -> tuple | None:
    """The shortest prefix of ``path`` that is a leaf key, else None."""
    for leaf in _LEAVES:
        if len(path) >= len(leaf) and all(p == "*" or p == q for p, q in zip(leaf, path)):
            return path[: len(leaf)]
    return None


def _schema_error_paths(root: Node) -> list[tuple] | None:
    """The keys to leave out so that the tree fits the schema, or None when leaving keys out cannot fix it
    (a required key is missing or wrong, a name is invalid, a value others depend on is wrong)."""
    unknown: list[tuple] = []
    wrong: list[tuple] = []
    _non_finite(root, [], (), wrong)
    for err in _validator().iter_errors(root.to_python()):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = err.schema.get("properties", {})
            unknown.extend(path + (key,) for key in err.instance if key not in allowed)  # nothing reads them
        else:
            wrong.append(path)
    leaves = [_leaf_of(path) for path in wrong]
    return None if any(leaf is None for leaf in leaves) else unknown + leaves


def _without(node: Node, paths: set[tuple], here: tuple = ()) -> Node:
    if isinstance(node, Mapping):
        items = tuple((k, _without(v, paths, here + (k.value,))) for k, v in node if here + (k.value,) not in paths)
        return Mapping(node.loc, items)
    if isinstance(node, Sequence):
        return Sequence(node.loc, tuple(_without(v, paths, here + (i,)) for i, v in enumerate(node)))
    return node


def repaired(root: Node) -> Node | None:
    """The tree with every wrong leaf key left out, when that makes it fit the schema; else None.

    The front end checks the rest of such a spec too, so that one run reports every problem; a wrong
    key that other checks depend on stops it here instead (their errors would follow from it)."""
    paths = _schema_error_paths(root)
    if paths is None:
        return None
    tree = _without(root, set(paths))
    return tree if not check_schema(tree) else None
