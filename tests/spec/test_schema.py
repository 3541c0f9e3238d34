"""Structural checks against the published JSON Schema, and the schema itself."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from hybridc.spec.load import parse_text
from hybridc.spec.schema import check_schema, schema

ROOT = Path(__file__).resolve().parents[2]


def diags(text):
    return check_schema(parse_text(text, file="s.yaml").root)


def test_published_schema_is_the_one_the_package_uses():
    published = json.loads((ROOT / "schemas" / "hybrid-spec.schema.json").read_text())
    assert published == schema()
    jsonschema.Draft202012Validator.check_schema(published)


def _objects(node, path="#"):
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield path, node
        for k, v in node.items():
            yield from _objects(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _objects(v, f"{path}/{i}")


def test_every_object_is_closed_and_every_field_described():
    for path, obj in _objects(schema()):
        if path.endswith("/init"):  # family keys pass through to the transformers config (checked later)
            continue
        assert obj.get("additionalProperties") is not None, path
        for name, prop in obj.get("properties", {}).items():
            assert prop.get("description"), f"{path}/properties/{name} has no description"


def test_unknown_keys_get_did_you_mean_and_all_are_reported():
    found = diags("hybridc: 1\nname: x\ncompnents: {}\ncomponents:\n  a:\n    form: hf:x/y\n    blcoks: split(2)\n")
    by_line = {d.location.line: d for d in found}
    assert "did you mean 'components'?" == by_line[3].hint
    assert by_line[6].location.col == 5 and "'from'" in by_line[6].hint
    assert "'blocks'" in by_line[7].hint
    assert len(found) == 3


@pytest.mark.parametrize(
    "snippet, line, col, fragment",
    [
        ("hybrid: {width: 12.5}", 6, 17, "'hybrid.width' must be 'max' or a positive integer"),
        ("hybrid: {projector: lineer}", 6, 21, "projector kind"),
        ("train: {stages: [{name: x, steps: -1}]}", 6, 35, "must be >= 0"),
        ("train: {stages: [{name: x, lr: 0}]}", 6, 32, "must be > 0"),
        ("train: {stages: [{name: x, train: [foo]}]}", 6, 36, "'train.stages[0].train[0]' must be one of"),
        ("train: {stages: [{steps: 3}]}", 6, 18, "missing the required key 'name'"),
        ("train: {seed: .nan}", 6, 15, "not a finite number"),
    ],
)
def test_messages_are_located(snippet, line, col, fragment):
    text = "hybridc: 1\nname: x\ncomponents:\n  a:\n    init: {family: llama}\n" + snippet + "\n"
    found = [d for d in diags(text) if fragment in d.message]
    assert found, [d.render() for d in diags(text)]
    assert (found[0].location.line, found[0].location.col) == (line, col)


def test_version_must_be_1():
    (d,) = diags("hybridc: 2\nname: x\ncomponents: {a: {init: {family: llama}}}\n")
    assert (d.location.line, d.location.col) == (1, 10) and "must be 1" in d.message


def test_required_top_level_keys():
    messages = {d.message for d in diags("name: x\n")}
    assert any("'hybridc'" in m for m in messages) and any("'components'" in m for m in messages)
