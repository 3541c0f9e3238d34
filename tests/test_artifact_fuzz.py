"""Mutation fuzz over what hybridc reads back from disk: a run directory (checkpoints, state, metrics, lock) and
its saved model (``final/``: config, weights, tokenizer). Each example damages one copy the way a careless or
hostile user could (a byte flipped, a file truncated, deleted, replaced by a directory, a FIFO or a symlink to a
file outside, a JSON value swapped for another) and runs the command a user would next: ``eval``,
``generate``, ``discretize`` or ``train --resume``. Runs are also damaged below their top level, at any depth:
a directory (``checkpoints/``, ``checkpoints/step-2``, ``plots/``, the teacher's ``teacher/checkpoints/step-N``
of a run stopped while distilling) replaced by a link to the user's directory outside, a FIFO or a file, and a
link planted where the run will write (``.final-tmp``, ``final``, a checkpoint it will write, a plot).
Whatever the damage, the command must end with a result or a clear error (exit 0, 1 or 2): never an internal
error (exit 70), a signal (SIGBUS 135, SIGSEGV 139), a traceback or a hang, and nothing outside the run
directory (and the output asked for) may change.

Examples: by default 20 per target of files and 2 below the top level of the stopped run (the run stopped while
distilling only in long mode: its named cases are in ``bad_artifacts/``); the CI's long mode sets
``HYBRIDC_FUZZ_EXAMPLES=2000``: that many, half per file target (about 15 minutes on 2 cores), and 50 per
target below the top level (about 4 minutes). Both are derandomized (the same cases every run, so a CI result can be
reproduced); ``HYBRIDC_FUZZ_FRESH=1`` draws fresh cases instead, to hunt for new failures on demand. The commands run in this process (a crash in native code takes the
test down with it, which fails it as surely as a signal in a subprocess would)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.artifacts import (check_outcome, commands, make_base, make_distilling, run_guarded, tree_digest,
                             workspace)
from tests.fuzzing import FUZZ_DERANDOMIZED

LONG = int(os.environ.get("HYBRIDC_FUZZ_EXAMPLES", "200"))
EXAMPLES = LONG // 2 if LONG > 200 else max(LONG // 10, 5)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=FUZZ_DERANDOMIZED, database=None,
                    suppress_health_check=list(HealthCheck))
# below the top level: a run's directories and the names it writes (fewer cases: many of them train again)
DEEP_SETTINGS = settings(SETTINGS, max_examples=LONG // 40 if LONG > 200 else max(LONG // 70, 2))


@pytest.fixture(scope="module")
def base(tmp_path_factory, bpe_tokenizer_files) -> Path:
    return make_base(tmp_path_factory.mktemp("artifact-fuzz"), bpe_tokenizer_files)


@pytest.fixture(scope="module")
def distilling(base) -> Path:
    make_distilling(base)
    return base


def regular_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def directories(path: Path) -> list[Path]:
    """Every directory below ``path``, at any depth (not following links)."""
    return sorted(p for p in path.rglob("*") if p.is_dir() and not p.is_symlink())


# names a run writes that may be absent (a link planted there must not be followed); relative to the run
PLANTED = (".final-tmp", ".final-old", "final", "plots/loss.png", "plots/alphas.png", "checkpoints/step-4",
           "checkpoints/step-6", "checkpoints/.tmp-step-4-1", "teacher", "teacher/checkpoints/step-9", "baselines",
           "spec.lock.yaml", "metrics.jsonl")


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


@st.composite
def deep_damage(draw):
    """A function ``apply(run, outside)`` that damages a run below its top level and says what it did: a
    directory at any depth replaced by a link to the user's directory, a FIFO, a file or nothing; or a link to
    the user's directory (or a file in it) planted at a name the run writes."""
    kind = draw(st.sampled_from(["dirlink", "dirfifo", "dirfile", "dirdelete", "plant"]))
    index = draw(st.integers(0, 10**6))
    planted = draw(st.sampled_from(PLANTED))
    to_file = draw(st.booleans())

    def apply(run: Path, outside: Path) -> str:
        if kind == "plant":
            target = run / planted
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(outside / "notes.txt" if to_file else outside)
            return f"link planted at {planted}"
        found = directories(run)
        target = found[index % len(found)]
        shutil.rmtree(target)
        if kind == "dirlink":
            target.symlink_to(outside, target_is_directory=True)
        elif kind == "dirfifo":
            os.mkfifo(target)
        elif kind == "dirfile":
            target.write_text("a user's file\n")
        return f"{kind} {target.relative_to(run)}"

    return apply


def model_files(run: Path) -> list[Path]:
    return regular_files(run / "final")


def run_files(run: Path) -> list[Path]:
    return [p for p in regular_files(run) if "final" not in p.relative_to(run).parts[:1]]


def fuzz_once(base: Path, tmp: Path, apply, command: str, pick: str) -> None:
    before = tree_digest(base)
    run, outside = workspace(base, tmp, stopped=pick == "run", distilling=pick == "distilling")
    outside_before = tree_digest(outside)
    what = apply(run / "final" if pick == "model" else run, outside)  # (--resume reads a stopped run, trains on)
    spec = "distill.yaml" if pick == "distilling" else "spec.yaml"
    result = run_guarded(commands(base, run, tmp / "out", spec)[command])
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


@DEEP_SETTINGS
@given(apply=deep_damage())
def test_a_run_damaged_below_its_top_level_is_resumed_or_refused_cleanly(base, tmp_path_factory, apply):
    fuzz_once(base, tmp_path_factory.getbasetemp() / "fuzz-deep", apply, "resume", "run")


@pytest.mark.skipif(LONG <= 200, reason="CI's long mode (HYBRIDC_FUZZ_EXAMPLES=2000); tests/bad_artifacts has its "
                                        "named cases in the default suite")
@DEEP_SETTINGS
@given(apply=deep_damage() | damage(regular_files))
def test_a_run_damaged_while_distilling_is_resumed_or_refused_cleanly(distilling, tmp_path_factory, apply):
    fuzz_once(distilling, tmp_path_factory.getbasetemp() / "fuzz-distilling", apply, "resume", "distilling")
