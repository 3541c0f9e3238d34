"""``--root`` confines every file opened, inside directories too: a component's or tokenizer's directory that
lies inside the root but holds a file linked to outside it (config.json, model.safetensors, tokenizer.json)
is refused by ``validate --root``, ``compile --build --root`` and ``train --root`` with a located error
naming the file and the root, before anything outside is read (no outside content in the output).
Without ``--root`` the same specs are fine."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.errors import SpecError
from hybridc.spec import load_spec
from hybridc.spec.resolve import PathError, confined_directory, confined_file
from tests.specs import write_spec

MARKER = "OUTSIDE-SECRET-7f3a"  # written into every outside file: it must never be printed

SPEC = """\
hybridc: 1
name: confined
tokenizer: {tokenizer}
components:
  gpt:
    from: models/gpt
    blocks: split(2)
  ssm:
    init: {{family: mamba, hidden_size: 32, layers: 2, vocab_size: 96}}
    blocks: split(2)
hybrid:
  mixture: fixed([[0.5, 0.5], [0.5, 0.5]])
train:
  stages:
    - {{name: align, data: "recall(vocab=16, length=16)", steps: 1, batch_size: 2}}
"""
FROM_AT = (6, 11)  # where `from: models/gpt` is written (line, column of its value)
TOKENIZER_AT = (3, 12)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def tree(tmp_path: Path, tiny_pretrained, bpe_tokenizer_files) -> Path:
    """tmp/root/specs (the spec's directory and the root) with models/gpt (a tiny GPT-2 and its tokenizer) and
    tok/ (a copy of that tokenizer); tmp/outside holds copies of every file, each marked with MARKER."""
    root = tmp_path / "root"
    gpt = root / "models" / "gpt"
    gpt.mkdir(parents=True)
    for f in tiny_pretrained("gpt2").iterdir():
        shutil.copy(f, gpt / f.name)
    (root / "tok").mkdir()
    for name, f in bpe_tokenizer_files.items():
        shutil.copy(f, gpt / name)
        shutil.copy(f, root / "tok" / name)
    outside = tmp_path / "outside"
    outside.mkdir()
    config = json.loads((gpt / "config.json").read_text())
    config["_name_or_path"] = MARKER
    (outside / "config.json").write_text(json.dumps(config))
    shutil.copy(gpt / "model.safetensors", outside / "model.safetensors")
    # another tokenizer (other tokens, so another fingerprint), with the marker as a token
    other = json.loads(bpe_tokenizer_files["tokenizer.json"].read_text())
    vocab = other["model"]["vocab"]
    vocab[MARKER] = len(vocab)
    (outside / "tokenizer.json").write_text(json.dumps(other))
    return tmp_path


def link_out(tree: Path, relative: str) -> Path:
    """Replace root/<relative> by a symlink to the same-named file in tmp/outside."""
    path = tree / "root" / relative
    path.unlink()
    path.symlink_to(tree / "outside" / path.name)
    return path


def spec(tree: Path, tokenizer: str = "gpt") -> Path:
    return write_spec(tree / "root", SPEC.format(tokenizer=tokenizer))


def assert_refused(result, path: Path, at: tuple[int, int], file: str, tree: Path) -> None:
    root = (tree / "root").resolve()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    line = next((ln for ln in result.output.splitlines() if ln.startswith(f"{path}:{at[0]}:{at[1]}: error:")), None)
    assert line is not None, result.output
    assert f"{file} in " in line and f"escapes the root {root}" in line, line
    assert MARKER not in result.output


def test_the_specs_are_fine_without_links(tree: Path) -> None:
    path = spec(tree)
    assert run("validate", "--root", tree / "root", path).exit_code == 0
    assert run("validate", "--root", tree / "root", spec(tree, tokenizer="tok")).exit_code == 0


@pytest.mark.parametrize("file", ["config.json", "model.safetensors", "tokenizer.json"])
def test_validate_root_refuses_a_component_file_linked_outside(tree: Path, file: str) -> None:
    link_out(tree, f"models/gpt/{file}")
    path = spec(tree)
    assert run("validate", path).exit_code == 0  # without a root, any path is allowed (as before)
    result = run("validate", "--root", tree / "root", path)
    assert_refused(result, path, FROM_AT, file, tree)
    assert "component 'gpt': " in result.output
    assert run("validate", "--root", tree, path).exit_code == 0  # a root wide enough takes it


def test_validate_root_refuses_a_tokenizer_file_linked_outside(tree: Path) -> None:
    """The hybrid's tokenizer directory inside the root, its tokenizer.json outside: refused, and the outside
    tokenizer is never read (its fingerprint used to be printed in the tokenizer-agreement error)."""
    from hybridc.spec.tokenizer_identity import identity_of_file

    outside_fingerprint = identity_of_file(tree / "outside" / "tokenizer.json").fingerprint[:12]
    link_out(tree, "tok/tokenizer.json")
    path = spec(tree, tokenizer="tok")
    without = run("validate", path)  # without a root it is read, and disagrees with the component's
    assert outside_fingerprint in without.output
    result = run("validate", "--root", tree / "root", path)
    assert_refused(result, path, TOKENIZER_AT, "tokenizer.json", tree)
    assert "tokenizer: tokenizer.json in 'tok'" in result.output
    assert outside_fingerprint not in result.output


def test_compile_build_root_loads_no_outside_weights(tree: Path) -> None:
    link_out(tree, "models/gpt/model.safetensors")
    path = spec(tree)
    out = tree / "out"
    result = run("compile", "--build", "--root", tree / "root", path, "-o", out)
    assert_refused(result, path, FROM_AT, "model.safetensors", tree)
    assert "built:" not in result.output and not out.exists()
    assert run("compile", "--build", path).exit_code == 0  # without a root: loads (as before)


def test_train_root_refuses_before_the_run(tree: Path) -> None:
    link_out(tree, "models/gpt/config.json")
    path = spec(tree)
    out = tree / "run"
    result = run("train", "--root", tree / "root", path, "-o", out, "--max-steps", "1", "-q")
    assert_refused(result, path, FROM_AT, "config.json", tree)
    assert not out.exists()


def test_every_file_linked_outside_is_named(tree: Path) -> None:
    for file in ("model.safetensors", "config.json", "tokenizer.json"):
        link_out(tree, f"models/gpt/{file}")
    path = spec(tree)
    result = run("validate", "--root", tree / "root", path)
    assert_refused(result, path, FROM_AT, "config.json", tree)  # the first by name, then the others
    assert "so do 2 more of its entries (model.safetensors, tokenizer.json)" in result.output


def test_a_link_inside_the_root_is_fine(tree: Path) -> None:
    gpt = tree / "root" / "models" / "gpt"
    shutil.move(gpt / "model.safetensors", tree / "root" / "weights.safetensors")
    (gpt / "model.safetensors").symlink_to(tree / "root" / "weights.safetensors")
    assert run("validate", "--root", tree / "root", spec(tree)).exit_code == 0


def test_weights_linked_outside_after_validation_are_refused_when_loaded(tree: Path) -> None:
    """The check is made again where the weights are read: a file swapped for a link after the spec was
    resolved is refused there, located, and nothing outside is loaded."""
    from hybridc.models.hybrid import lower

    path = spec(tree)
    rs = load_spec(path, root=tree / "root")
    link_out(tree, "models/gpt/model.safetensors")
    with pytest.raises(SpecError) as info:
        lower(rs)
    (d,) = info.value.diagnostics
    assert (d.location.line, d.location.col) == FROM_AT
    assert "model.safetensors in " in d.message and str((tree / "root").resolve()) in d.message
    lower(load_spec(path))  # resolved without a root: loads


def test_a_hub_id_that_is_also_a_local_directory_is_refused_under_a_root(tree: Path, monkeypatch) -> None:
    """transformers' from_pretrained reads a local directory named like the Hub id before asking the Hub."""
    elsewhere = tree / "cwd"
    (elsewhere / "org" / "gpt").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    path = write_spec(tree / "root", SPEC.format(tokenizer="ssm").replace("from: models/gpt", "from: hf:org/gpt"))
    result = run("validate", "--root", tree / "root", path)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"{path}:{FROM_AT[0]}:{FROM_AT[1]}: error: component 'gpt': hf:org/gpt is also a local path here" \
        in result.output


def test_confined_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (tmp_path / "secret").write_text(MARKER)
    (root / "d" / "in.json").write_text("{}")
    (root / "d" / "out.json").symlink_to(tmp_path / "secret")
    assert confined_file(root / "d", "in.json", root) == root / "d" / "in.json"
    assert confined_file(root / "d", "missing.json", root) == root / "d" / "missing.json"  # need not exist
    assert confined_file(root / "d", "out.json", None) == root / "d" / "out.json"  # no root: anything
    with pytest.raises(PathError) as info:
        confined_file(root / "d", "out.json", root)
    assert "out.json in " in info.value.message and f"escapes the root {root.resolve()}" in info.value.message
    with pytest.raises(PathError):
        confined_file(root / "d", "../../secret", root)
    with pytest.raises(PathError, match="out.json"):
        confined_directory(root / "d", root)
    os.unlink(root / "d" / "out.json")
    assert confined_directory(root / "d", root) == root / "d"


def test_a_stage_init_whose_final_weights_link_outside_is_refused_when_loaded(tree: Path) -> None:
    """``init: runs/a`` inside the root: its final/model.safetensors linked outside the root is refused by
    ``train --root`` with the stage's init: located, nothing outside loaded (the same spec trains without it)."""
    root = tree / "root"
    first = run("train", spec(tree), "-o", root / "runs" / "a", "--max-steps", "1", "-q")
    assert first.exit_code == 0, first.output
    text = SPEC.format(tokenizer="gpt").replace(
        "steps: 1, batch_size: 2}", "steps: 1, batch_size: 2, init: runs/a}")
    path = write_spec(root, text, "init.yaml")
    fine = run("train", "--root", root, path, "-o", root / "runs" / "b", "--max-steps", "1", "-q")
    assert fine.exit_code == 0, fine.output
    weights = root / "runs" / "a" / "final" / "model.safetensors"
    shutil.move(weights, tree / "outside" / "init.safetensors")
    weights.symlink_to(tree / "outside" / "init.safetensors")
    result = run("train", "--root", root, path, "-o", root / "runs" / "c", "--max-steps", "1", "-q")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "stage 'align'" in result.output and "model.safetensors" in result.output
    assert f"escapes the root {root.resolve()}" in result.output
    assert f"{path}:" in result.output  # located at the stage's init:
