"""Fuzzing the front end: whatever the input, the outcome is a valid spec or a located ``SpecError``.

Three kinds of input, each fed to ``parse_text`` + ``check_document`` (schema, expression and semantic
checks, the last also on the partial spec left by problems of the first two):

- arbitrary text and bytes (and text over YAML's punctuation, which gets further into the parser);
- arbitrary YAML trees (dicts, lists, scalars, dumped with ``yaml.safe_dump``), and the valid ``SMALL``
  spec with random subtrees replaced, inserted or deleted;
- arbitrary strings in every expression field (``blocks``, ``mixture``, ``task``, a stage's ``data`` and
  ``search``, ``tokenizer``, ``width``, ``embeddings``, ``head``, ``projector``) and in the path fields
  (``from``, a stage's ``init``).

Any other exception fails the test, and so does a diagnostic located outside the file. A spec that is
valid must also print (``fmt``) as text that reads back as the same spec.

Examples per test: ``HYBRIDC_FUZZ_EXAMPLES`` (default 200, half that per field for the field tests, with a
fixed seed so the default suite is reproducible; the CI's long mode sets 2000, also derandomized; ``HYBRIDC_FUZZ_FRESH=1`` draws new
examples).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridc.testing.invariants import front_end_is_total
from hybridc.testing.strategies import edited_data, expressions, spec_trees, yaml_punctuation, yaml_trees
from tests.fuzzing import FUZZ_DERANDOMIZED
from tests.specs import SMALL

EXAMPLES = int(os.environ.get("HYBRIDC_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=FUZZ_DERANDOMIZED,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

# Specs are "written" in an empty directory: relative paths in them resolve there, never into the repo.
SPEC_DIR = Path(tempfile.mkdtemp(prefix="hybridc-fuzz-"))
FILE = "fuzz.yaml"


def front_end(text: str | bytes) -> None:
    """Run the front end; fail unless it accepts the spec or raises a SpecError located inside the file
    (``hybridc.testing.invariants.front_end_is_total``)."""
    front_end_is_total(text, file=FILE, base_dir=SPEC_DIR)


# ---- (a) arbitrary text and bytes ------------------------------------------------------------------
@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    front_end(text)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    front_end(data)


@FUZZ
@given(yaml_punctuation())
def test_yaml_punctuation(text: str) -> None:
    front_end(text)


@FUZZ
@given(yaml_punctuation())
def test_yaml_punctuation_after_a_valid_prefix(text: str) -> None:
    front_end(SMALL + text)


# ---- (b) arbitrary YAML trees ------------------------------------------------------------------------
def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@FUZZ
@given(yaml_trees())
def test_arbitrary_trees(tree: Any) -> None:
    front_end(dump(tree))


@FUZZ
@given(spec_trees())
def test_arbitrary_trees_under_spec_keys(tree: dict) -> None:
    front_end(dump(tree))


SMALL_DATA = yaml.safe_load(SMALL)


@FUZZ
@given(edited_data(SMALL_DATA))
def test_small_spec_with_random_subtrees(data: Any) -> None:
    """SMALL with one to four random edits: a subtree replaced, a key inserted, an entry deleted."""
    front_end(dump(data))


# ---- (c) arbitrary strings in expression and path fields ------------------------------------------------
SEARCHED = SMALL.replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "search").replace(
    '- {name: align, data: "recall(vocab=16, length=16)", steps: 5}',
    '- {name: search, data: "recall(vocab=16, length=16)", search: "darts(lr=0.01)", steps: 5}')
FIELDS = {
    "blocks": (SMALL, ("components", "ssm", "blocks")),
    "blocks-item": (SMALL, ("components", "ssm", "blocks", 0)),
    "mixture": (SMALL, ("hybrid", "mixture")),
    "task": (SMALL, ("task",)),
    "data": (SMALL, ("train", "stages", 0, "data")),
    "search": (SEARCHED, ("train", "stages", 0, "search")),
    "tokenizer": (SMALL, ("tokenizer",)),
    "width": (SMALL, ("hybrid", "width")),
    "embeddings": (SMALL, ("hybrid", "embeddings")),
    "head": (SMALL, ("hybrid", "head")),
    "projector": (SMALL, ("hybrid", "projector")),
    "projector-ssm": (SMALL, ("hybrid", "projector", "ssm")),
    "from": (SMALL, ("components", "ssm", "from")),
    "stage-init": (SMALL, ("train", "stages", 0, "init")),
    "vocab": (SMALL, ("components", "ssm", "vocab")),
}


def with_field(base: str, path: tuple, value: str) -> str:
    data = yaml.safe_load(base)
    node = data
    for part in path[:-1]:
        node = node[part]
    last = path[-1]
    if path[:2] == ("components", "ssm") and last == "from":
        node.pop("init")
    if last == 0 and isinstance(node, str):  # blocks as a YAML list with the value as its first item
        parent = data["components"]["ssm"]
        parent["blocks"] = [value, "1..3"]
        return dump(data)
    node[last] = value
    return dump(data)


@pytest.mark.parametrize("field", sorted(FIELDS))
@settings(max_examples=max(20, EXAMPLES // 2), deadline=None, derandomize=FUZZ_DERANDOMIZED,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(value=expressions())
def test_arbitrary_strings_in_fields(field: str, value: str) -> None:
    base, path = FIELDS[field]
    front_end(with_field(base, path, value))


def test_the_fuzzer_writes_each_field() -> None:
    """``with_field`` really puts the value at the field's path (a sentinel reads back there)."""
    for field, (base, path) in FIELDS.items():
        node: Any = yaml.safe_load(with_field(base, path, "SENTINEL"))
        for part in path:
            node = node[part]
        assert node == "SENTINEL", field
