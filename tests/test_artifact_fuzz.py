"""Mutation fuzz over what hybridc reads back from disk: a run directory (checkpoints, state, metrics, lock) and
its saved model (``final/``: config, weights, tokenizer). Each example damages one copy the way a careless or
hostile user could (a byte flipped, a file truncated, deleted, replaced by a directory, a FIFO or a symlink to a
file outside, a JSON value swapped for another) and runs the command a user would next: ``eval``,
``generate``, ``discretize`` or ``train --resume``. Whatever the damage, the command must end with a result or
a clear error (exit 0, 1 or 2): never an internal error (exit 70), a signal (SIGBUS 135, SIGSEGV 139), a
traceback or a hang, and nothing outside the run directory (and the output asked for) may change.

Examples: by default 20 per target; the CI's long mode sets ``HYBRIDC_FUZZ_EXAMPLES=2000``: that many, half
per target (about 15 minutes on 2 cores). Both are derandomized (the same cases every run, so a CI result can be
reproduced); ``HYBRIDC_FUZZ_FRESH=1`` draws fresh cases instead, to hunt for new failures on demand. The commands run in this process (a crash in native code takes the
test down with it, which fails it as surely as a signal in a subprocess would)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.artifacts import check_outcome, commands, make_base, run_guarded, tree_digest, workspace
from tests.fuzzing import FUZZ_DERANDOMIZED

LONG = int(os.environ.get("HYBRIDC_FUZZ_EXAMPLES", "200"))
EXAMPLES = LONG // 2 if LONG > 200 else max(LONG // 10, 5)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=FUZZ_DERANDOMIZED, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def base(tmp_path_factory, bpe_tokenizer_files) -> Path:
    return make_base(tmp_path_factory.mktemp("artifact-fuzz"), bpe_tokenizer_files)


def regular_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def swap_json_value(data, choices: list[int], value):
    """``data`` with one value (reached by following ``choices`` through lists and dicts) replaced by ``value``."""
    if not choices or not isinstance(data, (list, dict)) or not data:
        return value
    if isinstance(data, list):
        i = choices[0] % len(data)
        return data[:i] + [swap_json_value(data[i], choices[1:], value)] + data[i + 1:]
    keys = list(data)
    key = keys[choices[0] % len(keys)]
    return {**data, key: swap_json_value(data[key], choices[1:], value)}


@st.composite
def damage(draw, pick_from):
    """A function ``apply(directory, outside)`` that damages one file of ``directory`` and says what it did."""
    kind = draw(st.sampled_from(["flip", "truncate", "delete", "directory", "fifo", "symlink", "json", "text"]))
    index = draw(st.integers(0, 10**6))
    position = draw(st.floats(0, 1, exclude_max=True))
    byte = draw(st.integers(1, 255))
    choices = draw(st.lists(st.integers(0, 50), max_size=4))
    value = draw(JSON_VALUES)
    text = draw(st.sampled_from(["", "[]", "null", "{", "\udcff\udcfe", "[" * 100_000, '{"a": 1}', "1e999"]))

    def apply(directory: Path, outside: Path) -> str:
        files = pick_from(directory)
        target = files[index % len(files)]
        data = target.read_bytes()
        how = kind
        if how == "json":
            try:
                parsed = json.loads(data)
            except ValueError:
                how = "flip"
            else:
                target.write_text(json.dumps(swap_json_value(parsed, choices, value)))
        if how == "flip" and data:
            at = int(position * len(data))
            target.write_bytes(data[:at] + bytes([data[at] ^ byte]) + data[at + 1:])
        elif how == "truncate":
            target.write_bytes(data[:int(position * len(data))])
        elif how in ("delete", "directory", "fifo", "symlink"):
            target.unlink()
            if how == "directory":
                target.mkdir()
            elif how == "fifo":
                os.mkfifo(target)
            elif how == "symlink":
                target.symlink_to(outside / ("config.json" if target.suffix == ".json" else "notes.txt"))
        elif how == "text":
            target.write_text(text, errors="surrogateescape")
        return f"{how} {target.relative_to(directory)}"

    return apply


def model_files(run: Path) -> list[Path]:
    return regular_files(run / "final")


def run_files(run: Path) -> list[Path]:
    return [p for p in regular_files(run) if "final" not in p.relative_to(run).parts[:1]]


def fuzz_once(base: Path, tmp: Path, apply, command: str, pick: str) -> None:
    before = tree_digest(base)
    run, outside = workspace(base, tmp, stopped=pick == "run")  # (--resume reads a stopped run, trains on)
    outside_before = tree_digest(outside)
    what = apply(run if pick == "run" else run / "final", outside)
    result = run_guarded(commands(base, run, tmp / "out")[command])
    check_outcome(result, f"{command} after {what}")
    assert tree_digest(outside) == outside_before, what
    assert tree_digest(base) == before, what
    assert {p.name for p in tmp.iterdir()} <= {"run", "outside", "out"}, what


@SETTINGS
@given(apply=damage(regular_files), command=st.sampled_from(["eval", "generate", "discretize"]))
def test_a_damaged_saved_model_is_used_or_refused_cleanly(base, tmp_path_factory, apply, command):
    fuzz_once(base, tmp_path_factory.getbasetemp() / "fuzz-model", apply, command, "model")


@SETTINGS
@given(apply=damage(regular_files))
def test_a_damaged_run_is_resumed_or_refused_cleanly(base, tmp_path_factory, apply):
    fuzz_once(base, tmp_path_factory.getbasetemp() / "fuzz-run", apply, "resume", "run")
