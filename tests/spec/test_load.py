"""YAML loading: positions, YAML 1.2 scalars, and hostile input turned into located errors."""

from __future__ import annotations

import math

import pytest

from hybridc.errors import SpecError
from hybridc.spec.load import MAX_BYTES, load_file, parse_text
from hybridc.spec.tree import Mapping, Scalar


def only_error(text, file="s.yaml"):
    with pytest.raises(SpecError) as info:
        parse_text(text, file=file)
    (d,) = info.value.diagnostics
    return d


def test_positions_are_one_based_and_exact():
    doc = parse_text("a: 1\nb:\n  c: [x, y]\n", file="f.yaml")
    root = doc.root
    assert isinstance(root, Mapping)
    c = root.get("b").get("c")
    assert (c.loc.line, c.loc.col) == (3, 6)
    assert (c.items[1].loc.line, c.items[1].loc.col) == (3, 10)
    assert root.key_node("b").loc.line == 2


@pytest.mark.parametrize(
    "text, value",
    [("1:4", "1:4"), ("2e-4", 2e-4), ("yes", "yes"), ("on", "on"), ("true", True), ("~", None), ("0x10", 16),
     ("0o17", 15), ("1_000", "1_000"), ("-3", -3), (".5", 0.5), ("'3'", "3"), ('"true"', "true")],
)
def test_scalars_follow_yaml_1_2_core(text, value):
    assert parse_text(f"v: {text}\n").root.get("v").value == value


def test_nan_and_inf_are_read_as_floats():
    root = parse_text("a: .nan\nb: -.inf\n").root
    assert math.isnan(root.get("a").value) and root.get("b").value == -math.inf


def test_scalar_offsets_account_for_quotes():
    node = parse_text('x: "split(2)"\n').root.get("x")
    assert isinstance(node, Scalar) and node.loc_at(6).col == 11


def test_duplicate_key_is_located_at_the_second():
    d = only_error("a: 1\nb: 2\na: 3\n")
    assert (d.location.line, d.location.col) == (3, 1)
    assert "duplicate key 'a'" in d.message and "line 1" in d.hint


def test_tab_indentation_has_a_hint():
    d = only_error("a:\n\tb: 1\n")
    assert d.location.line == 2 and "tabs" in d.hint


def test_billion_laughs_is_stopped():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    d = only_error("\n".join(lines) + "\n")
    assert "more than" in d.message and "billion laughs" in d.hint


def test_recursive_alias_is_an_error():
    assert "recursive" in only_error("a: &a [1, *a]\n").message


def test_non_utf8_is_located():
    d = only_error(b"name: ok\nx: caf\xe9\n")
    assert (d.location.line, d.location.col) == (2, 7) and "UTF-8" in d.message


def test_size_limit(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * (MAX_BYTES + 10) + "\n")
    with pytest.raises(SpecError) as info:
        load_file(path)
    assert "limited" in info.value.diagnostics[0].message


@pytest.mark.parametrize(
    "text, fragment",
    [("", "empty"), ("# only a comment\n", "empty"), ("a: 1\n---\nb: 2\n", "more than one"),
     ("a: !!python/object:os.system x\n", "unsupported YAML tag"), ("<<: {a: 1}\n", "merge keys"),
     ("? [a, b]\n: 1\n", "keys must be plain"), ("a: [1, 2\n", "invalid YAML")],
)
def test_other_bad_yaml(text, fragment):
    assert fragment in only_error(text).message


def test_missing_file_is_a_located_error(tmp_path):
    with pytest.raises(SpecError) as info:
        load_file(tmp_path / "nope.yaml")
    assert "no such file" in info.value.diagnostics[0].message


def test_a_pipe_given_as_the_spec_is_refused_at_once(tmp_path):
    """validate, fmt and diff never open a FIFO (a blocking read would wait forever for a writer)."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    for args in (["validate", str(fifo)], ["fmt", str(fifo)], ["diff", str(fifo), str(fifo)]):
        done = subprocess.run([sys.executable, "-m", "hybridc", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert "not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_thread_counts_past_the_machine_are_bounded(tmp_path):
    """HYBRIDC_THREADS or OMP_NUM_THREADS of a million: lowered to what the machine runs (OpenMP aborts on
    such counts), with a warning, never a crash."""
    import subprocess
    import sys

    from hybridc.train.threads import bounded, fixed_threads, machine_cores

    assert fixed_threads({"HYBRIDC_THREADS": "1000000"}) == bounded(1000000) == 4 * machine_cores()
    done = subprocess.run([sys.executable, "-m", "hybridc", "compile", "--build", "specs/three-way.yaml"],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                             "OMP_NUM_THREADS": "1000000"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "OMP_NUM_THREADS=1000000 is more threads than this machine runs" in done.stderr
