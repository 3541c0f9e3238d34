"""Fuzzing ``validate`` and ``fmt`` with text-level mutations of the example specs (``specs/*.yaml``).

Each example takes one example spec and applies one to four edits to its text: a character flipped to
YAML punctuation, a control or other Unicode character, a span deleted or a line repeated, a value
swapped for one of another type, a huge number, a deeply nested value, a long string, an odd expression.
Then, in-process, the way the CLI runs them:

- ``validate`` (``check_document``, the offline test Hub in place of the real one) gives a resolved spec
  or a ``SpecError`` whose every diagnostic is located inside the file, on one line; any other exception
  (the CLI's exit 70) fails the test;
- ``fmt`` gives the canonical text or a located ``SpecError``; its output is a fixed point (``fmt`` of it
  is itself), and whenever the input validated, the output validates to the same spec;
- no call takes more than 2 s.

Examples per test: a quarter of ``HYBRIDC_FUZZ_EXAMPLES`` (default 200 -> 50; the CI's long mode sets 2000:
2,000), derandomized unless ``HYBRIDC_FUZZ_FRESH=1``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from hybridc.errors import SpecError
from hybridc.spec.frontend import check_document, parse_document
from hybridc.spec.load import parse_text
from hybridc.testing.strategies import edited_texts
from tests.fuzzing import FUZZ_DERANDOMIZED

SPECS = Path(__file__).resolve().parents[2] / "specs"
FILES = sorted(p.name for p in SPECS.glob("*.yaml"))
LONG = int(os.environ.get("HYBRIDC_FUZZ_EXAMPLES", "200"))
EXAMPLES = max(LONG // 4, 10) if LONG <= 200 else LONG
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=FUZZ_DERANDOMIZED,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECONDS = 2.0

# one of the example specs with one to four text edits (``hybridc.testing.strategies.edited_texts``)
mutated = edited_texts({name: (SPECS / name).read_text(encoding="utf-8") for name in FILES})


def timed(call, *args):
    began = time.perf_counter()
    try:
        return call(*args)
    finally:
        took = time.perf_counter() - began
        assert took < SECONDS, f"{call.__name__} took {took:.1f} s"


def located(err: SpecError, file: str, text: str) -> None:
    lines = text.count("\n") + 1
    for d in err.diagnostics:
        rendered = d.render()
        assert d.location.file == file and 1 <= d.location.line <= lines + 1 and d.location.col >= 1, rendered
        assert "\n" not in rendered and "Traceback" not in rendered, rendered


def validate(file: str, text: str):
    """The resolved spec, or None after checking the SpecError."""
    try:
        return timed(check_document, parse_text(text, file=file, path=SPECS / file))
    except SpecError as err:
        located(err, file, text)
        return None


def fmt(file: str, text: str) -> str | None:
    try:
        return timed(lambda: parse_document(parse_text(text, file=file, path=SPECS / file)).canonical_text())
    except SpecError as err:
        located(err, file, text)
        return None


@pytest.mark.parametrize("name", FILES)
def test_the_example_specs_validate(name: str) -> None:
    text = (SPECS / name).read_text(encoding="utf-8")
    assert validate(name, text) is not None
    canonical = fmt(name, text)
    assert canonical is not None and fmt(name, canonical) == canonical


@FUZZ
@given(mutated)
def test_mutated_example_specs(example: tuple[str, str]) -> None:
    name, text = example
    resolved = validate(name, text)
    canonical = fmt(name, text)
    if canonical is None:
        assert resolved is None  # fmt refuses only what validate refuses too
        return
    assert fmt(name, canonical) == canonical, "fmt is not idempotent"
    if resolved is not None:
        again = validate(name, canonical)
        assert again is not None, "fmt's output of a valid spec does not validate"
        assert again.spec == resolved.spec
