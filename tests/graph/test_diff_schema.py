"""`hybridc diff` covers the whole language: every key path of the JSON Schema, changed in a valid spec, is named.

The key paths come from the published schema (``schemas/hybrid-spec.schema.json``, the same file as the
package's ``hybridc/spec/schema.json``), not from a list here: a key added to the schema is walked too, and
the test fails until it says how to change that key (``EDITS``) and the diff names the change.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybridc.errors import SpecError
from hybridc.graph.diff import diff_specs
from hybridc.spec.frontend import load_spec
from tests.tiny_models import tiny_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = (ROOT / "schemas" / "hybrid-spec.schema.json", ROOT / "hybridc" / "spec" / "schema.json")

# A valid spec that writes every key the schema has (with its non-default value where the key has a
# default), so that changing a key is changing a value a user wrote. Two pretrained-style components would
# need model files: `pre` is a local directory holding only a config.json (no weights are read).
BASE: dict[str, Any] = {
    "hybridc": 1,
    "name": "full",
    "tokenizer": "attn",
    "components": {
        "attn": {"init": {"family": "gpt-neox", "hidden_size": 32, "layers": 4, "heads": 4, "vocab_size": 64,
                          "max_length": 64, "initializer_range": 0.02},
                 "blocks": "split(2)", "trust_remote_code": False},
        "ssm": {"init": {"family": "mamba", "hidden_size": 24, "layers": 3, "vocab_size": 64}, "blocks": "0..1, 1..3"},
        "pre": {"from": "model-a", "blocks": "0..1, 1..3", "vocab": "new", "trust_remote_code": False},
    },
    "hybrid": {"width": "max", "projector": {"attn": "linear", "ssm": "mlp", "pre": "linear"}, "embeddings": "mix",
               "head": "mix", "mixture": "search", "budget": {"flops_per_token": "0.9x"}},
    "task": "causal-lm",
    "train": {
        "seed": 0, "data_seed": 1, "checkpoint_every": 10, "baselines": False,
        "stages": [
            {"name": "align", "kind": "align", "train": ["projectors", "embeddings"],
             "data": "recall(vocab=16, length=16)", "steps": 5, "batch_size": 4, "grad_accum": 1, "lr": 1e-3,
             "weight_decay": 0.01, "betas": [0.9, 0.99], "warmup": 1, "schedule": "cosine", "grad_clip": 1.0,
             "eval_every": 0},
            {"name": "search", "search": "dash(lr=0.05)", "epochs": 0.5},
            {"name": "discretize"},
            {"name": "distill", "distill": "kl(temperature=2.0)", "steps": 3, "init": "runs/other/final"},
        ],
    },
}

Edit = Callable[[dict[str, Any], Any], Any]

# How to change a key whose schema alone does not give a valid other value (strings, objects, keys that
# depend on others). A key path: '*' is any entry of a mapping, '[]' any item of a list. Each edit takes the
# spec data and a mapping that holds the key (each component for 'components.*.KEY', each stage for
# 'train.stages.[].KEY', tried in turn), and changes one of them in place; the edits of a key are tried in
# order until the spec stays valid.
EDITS: dict[str, list[Edit]] = {
    "name": [lambda d, p: d.update(name="renamed")],
    "tokenizer": [lambda d, p: d.update(tokenizer="ssm")],
    "components": [lambda d, p: d["components"].update(
        extra={"init": {"family": "llama", "hidden_size": 16, "layers": 2, "heads": 2, "vocab_size": 64,
                        "max_length": 64}, "blocks": "split(2)"})],
    "components.*": [lambda d, p: (d["components"].pop("ssm"), d["hybrid"]["projector"].pop("ssm"))],
    "components.*.from": [lambda d, p: d["components"]["pre"].update({"from": "model-b"})],
    "components.*.init": [lambda d, p: d["components"]["attn"].update(init={"family": "llama", "hidden_size": 32, "layers": 4,
                                                                  "heads": 2, "vocab_size": 64, "max_length": 64})],
    "components.*.init.family": [lambda d, p: d["components"]["attn"]["init"].update(family="llama", heads=2)],
    "components.*.init.*": [lambda d, p: d["components"]["attn"]["init"].update(initializer_range=0.05)],
    "components.*.blocks": [lambda d, p: d["components"]["attn"].update(blocks="0..1, 1..4")],
    "components.*.vocab": [lambda d, p: d["components"]["pre"].update(vocab="pretrained")],
    "hybrid": [lambda d, p: d.pop("hybrid")],
    "hybrid.projector": [lambda d, p: d["hybrid"].update(projector="mlp-skip")],
    "hybrid.projector.*": [lambda d, p: d["hybrid"]["projector"].update(ssm="linear")],
    "hybrid.embeddings": [lambda d, p: d["hybrid"].update(embeddings="attn")],
    "hybrid.head": [lambda d, p: d["hybrid"].update(head="ssm")],
    "hybrid.mixture": [lambda d, p: (d["hybrid"].update(mixture="fixed([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])"),
                                     d["train"]["stages"][1].update(kind="finetune"), d["train"]["stages"][1].pop("search"))],
    "hybrid.budget": [lambda d, p: d["hybrid"].pop("budget")],
    "task": [lambda d, p: (d.update(task="compress"), d["train"]["stages"][0].update(data="mad(compression)"))],
    "train": [lambda d, p: d.pop("train")],
    "train.stages": [lambda d, p: d["train"]["stages"].append({"name": "retrain", "steps": 2})],
    "train.stages.[]": [lambda d, p: d["train"]["stages"].pop(3)],
    "train.stages.[].name": [lambda d, p: p.update(name=p["name"] + "-renamed")],
    "train.stages.[].init": [lambda d, p: p.update(init="runs/elsewhere/final")],
    "train.stages.[].data": [lambda d, p: p.update(data="recall(vocab=16, length=32)")],
    "train.stages.[].search": [lambda d, p: p.update(search="darts(lr=0.01, alternate=true)")],
    "train.stages.[].distill": [lambda d, p: p.update(distill="kl(temperature=1.0, ce=0.5)")],
    "train.stages.[].steps": [lambda d, p: (p.pop("epochs", None), p.update(steps=p.get("steps", 3) + 1))],
    "train.stages.[].epochs": [lambda d, p: (p.pop("steps", None), p.update(epochs=2))],
    "train.stages.[].train": [lambda d, p: p.update(train="all"), lambda d, p: p.update(train=["head"])],
    "train.stages.[].betas": [lambda d, p: p.update(betas=[0.8, 0.95])],
    "train.stages.[].grad_clip": [lambda d, p: p.update(grad_clip=None), lambda d, p: p.update(grad_clip=0.5)],
}
# A budget measure is changed by measuring the budget in it instead.
for _measure in ("flops_per_token", "params", "decode_params", "decode_state"):
    EDITS[f"hybrid.budget.{_measure}"] = [
        lambda d, p, m=_measure: d["hybrid"].update(budget={m: "0.8x"} if m not in d["hybrid"]["budget"] else {m: "0.95x"})]


def _deref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def key_paths(schema: dict[str, Any], node: dict[str, Any] | None = None, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every key path of ``schema`` with its (dereferenced) schema: named properties, mapping entries ('*',
    also a mapping open to any key, as ``init``'s config keys), list items ('[]'), through anyOf branches."""
    node = _deref(schema, schema if node is None else node)
    branches = [node, *(_deref(schema, b) for b in node.get("anyOf", ()))]
    seen: set[str] = set()
    for branch in branches:
        for key, sub in branch.get("properties", {}).items():
            child = f"{path}.{key}" if path else key
            if child not in seen:
                seen.add(child)
                yield child, _deref(schema, sub)
                yield from key_paths(schema, sub, child)
        extra = branch.get("additionalProperties")
        if extra is True or isinstance(extra, dict):
            child = f"{path}.*"
            if child not in seen:
                seen.add(child)
                yield child, _deref(schema, extra) if isinstance(extra, dict) else {}
                if isinstance(extra, dict):
                    yield from key_paths(schema, extra, child)
        items = branch.get("items")
        if branch.get("type") == "array" and isinstance(items, dict) and items.get("type") == "object" or (
                isinstance(items, dict) and "$ref" in items):
            child = f"{path}.[]"
            if child not in seen:
                seen.add(child)
                yield child, _deref(schema, items)
                yield from key_paths(schema, items, child)


def _generic(sub: dict[str, Any], key: str) -> list[Edit]:
    """Edits the key's schema gives: each enum value, the other boolean, an integer or a number near the
    current one (or a plain one where the key holds something else, such as ``width: max``)."""
    def numbers(value: Any, integer: bool) -> list[Any]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [value + 1, value - 1] if integer else [value * 0.5, value * 2]
        return [64, 1] if integer else [0.5, 2.0]

    edits: list[Edit] = []
    for option in [sub, *sub.get("anyOf", ())]:
        if "enum" in option:
            edits += [lambda d, p, v=v: p.update({key: v}) for v in option["enum"]]
        kind = option.get("type")
        if kind == "boolean":
            edits.append(lambda d, p: p.update({key: not p.get(key, False)}))
        elif kind in ("integer", "number"):
            for i in range(2):
                edits.append(lambda d, p, i=i, k=kind: p.update({key: numbers(p.get(key), k == "integer")[i]}))
    return edits


def _holders(data: dict[str, Any], path: str) -> list[Any]:
    """What holds the last key of ``path`` in ``data``: each entry of a mapping for '*', each list item for
    '[]' (for a path ending in '*' or '[]', the mapping or list itself)."""
    nodes: list[Any] = [data]
    for part in path.split(".")[:-1]:
        step: list[Any] = []
        for node in nodes:
            if part == "*" and isinstance(node, dict):
                step += list(node.values())
            elif part == "[]" and isinstance(node, list):
                step += list(node)
            elif isinstance(node, dict) and part in node:
                step.append(node[part])
        nodes = step
    return nodes


def _first_valid_edit(directory: Path, path: str, edits: list[Edit]):
    """The first of ``edits`` (on the first holder of the key it applies to) that changes BASE into a valid
    spec, resolved; None when none does."""
    for edit in edits:
        for index in range(len(_holders(BASE, path))):
            data = copy.deepcopy(BASE)
            edit(data, _holders(data, path)[index])
            if data == BASE:
                continue
            try:
                return _load(directory, data, "edited.yaml")
            except SpecError:
                continue
    return None


def _normal(path: str) -> str:
    """A change's path as a key path: component and projector names as '*', stages as '[]', rows dropped."""
    path = re.sub(r"^train\.stages\[[^]]*\]", "train.stages.[]", path)
    path = re.sub(r"\[\d+\]$", "", path)
    path = re.sub(r" \(.*\)$", "", path)
    parts = path.split(".")
    if parts[0] == "components" and len(parts) > 1:
        parts[1] = "*"
        if len(parts) > 3 and parts[2] == "init" and parts[3] not in ("family",):
            known = {"hidden_size", "layers", "heads", "vocab_size", "max_length"}
            parts[3] = parts[3] if parts[3] in known else "*"
    if parts[:2] == ["hybrid", "projector"] and len(parts) > 2:
        parts[2] = "*"
    return ".".join(parts)


def _covers(changes: list[str], path: str) -> bool:
    """A change is named at ``path``, inside it, or at the object that holds it (added or removed whole)."""
    return any(c == path or c.startswith(path + ".") or path.startswith(c + ".") for c in changes)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("schema-walk")
    for name, layers in (("model-a", 3), ("model-b", 3)):
        (tmp / name).mkdir()
        config = tiny_config("llama", layers=layers, vocab_size=64, initializer_range=0.02 if name == "model-a" else 0.03)
        (tmp / name / "config.json").write_text(json.dumps(config))
    return tmp


def _load(directory: Path, data: dict[str, Any], name: str):
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    rs = load_spec(path)
    if rs.spec.hybrid.budget is not None:
        from hybridc.graph.budget import check_budget

        check_budget(rs)
    return rs


def test_the_two_schema_files_are_one():
    assert SCHEMAS[0].read_bytes() == SCHEMAS[1].read_bytes()


def test_every_key_of_the_schema_changed_is_named_by_diff(workspace):
    schema = json.loads(SCHEMAS[0].read_text())
    paths = dict(key_paths(schema))
    # the walk reaches the keys the issue found missed, and the nested ones
    assert {"hybrid.budget", "hybrid.budget.params", "train.data_seed", "train.stages.[].distill",
            "components.*.init.*", "hybrid.projector.*"} <= set(paths)
    base = _load(workspace, BASE, "base.yaml")
    missed, invalid, unchangeable = [], [], []
    for path, sub in paths.items():
        if "const" in sub:  # one value only (the spec version): nothing to change
            unchangeable.append(path)
            continue
        edited = _first_valid_edit(workspace, path, EDITS.get(path) or _generic(sub, path.rsplit(".", 1)[-1]))
        if edited is None:
            invalid.append(path)
            continue
        named = [_normal(c.path) for c in diff_specs(base.spec, edited.spec, base, edited)]
        if not _covers(named, path):
            missed.append((path, named))
    assert unchangeable == ["hybridc"]
    assert not invalid, f"no edit gives a valid spec for {invalid}: add one to EDITS"
    assert not missed, f"diff does not name a change of {missed}"


