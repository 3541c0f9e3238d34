"""``root``: local paths written in a spec may not resolve (after '..' and symlinks) outside a root directory.

Paths are relative to the spec file either way; without a root any path is allowed (as before). With
``load_spec(path, root=...)`` / ``resolve(parsed, root=...)`` / ``--root DIR``, a component's ``from:``
directory, a ``tokenizer:`` path, a data ``source`` file, a ``programmed(...)`` alphas file and a stage's
``init:`` directory that land outside the root are located errors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.errors import SpecError
from hybridc.spec import load_spec, parse_file, resolve
from tests.specs import SMALL, write_spec
from tests.tiny_models import tiny_config

SSM_INIT = "init: {family: mamba, hidden_size: 24, layers: 3, vocab_size: 64}"
FIXED = "fixed([[0.5, 0.5], [0.25, 0.75]])"
DATA = "recall(vocab=16, length=16)"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/root/specs (the spec's directory, and the root), tmp/root/models/ssm, tmp/outside/... ."""
    config = {**tiny_config("mamba", hidden_size=24, layers=3, vocab_size=64)}
    for where in ("root/specs/models/ssm", "root/models/ssm", "outside/ssm", "root/specs-evil/ssm"):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "config.json").write_text(json.dumps(config))
    for where in ("root/specs", "outside"):
        (tmp_path / where / "corpus.txt").write_text("some text " * 50)
        (tmp_path / where / "alphas.json").write_text(json.dumps({"alphas": [[0.5, 0.5], [0.25, 0.75]],
                                                                    "components": ["attn", "ssm"]}))
        (tmp_path / where / "tok").mkdir()
        (tmp_path / where / "tok" / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordLevel", "vocab": {"a": 0, "b": 1}, "unk_token": "a"}}))
    return tmp_path


def spec(tree: Path, *, frm: str | None = None, tokenizer: str | None = None, data: str | None = None,
         alphas: str | None = None, init: str | None = None) -> Path:
    text = SMALL
    if frm is not None:
        text = text.replace(SSM_INIT, f"from: {frm}")
    if tokenizer is not None:
        text = text.replace("name: small\n", f"name: small\ntokenizer: {tokenizer}\n")
    if data is not None:
        text = text.replace(DATA, f"text({data}, block=16)")
    if alphas is not None:
        text = text.replace(FIXED, f"programmed({alphas})")
    if init is not None:
        text = text.replace("steps: 5}", f"steps: 5, init: {init}}}")
    return write_spec(tree / "root" / "specs", text)


def problems(path: Path, root: Path | None) -> list:
    with pytest.raises(SpecError) as info:
        load_spec(path, root=root)
    return list(info.value.diagnostics)


def escapes(path: Path, root: Path) -> list:
    return [d for d in problems(path, root) if "escapes the root" in d.message]


def at(d) -> tuple[int, int]:
    return d.location.line, d.location.col


def test_paths_inside_the_root_are_fine(tree: Path) -> None:
    path = spec(tree, frm="models/ssm", tokenizer="tok", data="corpus.txt", alphas="alphas.json", init="runs/a")
    root = tree / "root" / "specs"
    for r in (None, root, tree / "root", tree):
        rs = load_spec(path, root=r)
        assert rs.component("ssm").location == str((root / "models" / "ssm").resolve())
    # '..' that comes back inside, an absolute path inside, and the root itself all stay inside
    assert load_spec(spec(tree, frm="models/../models/ssm"), root=root).component("ssm").num_layers == 3
    assert load_spec(spec(tree, frm=str(root / "models" / "ssm")), root=root).num_blocks == 2
    assert load_spec(spec(tree, frm="../models/ssm"), root=tree / "root").num_blocks == 2


def test_without_a_root_any_path_is_allowed(tree: Path) -> None:
    path = spec(tree, frm="../../outside/ssm", data="../../outside/corpus.txt", alphas="../../outside/alphas.json")
    assert load_spec(path).alphas == ((0.5, 0.5), (0.25, 0.75))


def test_a_component_directory_outside_the_root(tree: Path) -> None:
    path = spec(tree, frm="../../outside/ssm")
    (d,) = escapes(path, tree / "root" / "specs")
    assert at(d) == (8, 11)  # the value of from:
    assert d.message.startswith("component 'ssm': path '../../outside/ssm' escapes the root")
    assert str((tree / "outside" / "ssm").resolve()) in d.message and "--root" in d.hint
    # the same spec is fine when the root is wide enough
    assert load_spec(path, root=tree).num_blocks == 2


@pytest.mark.parametrize(
    "field, fragment, position",
    [
        ({"tokenizer": "../../outside/tok"}, "tokenizer: path '../../outside/tok' escapes the root", (3, 12)),
        ({"data": "../../outside/corpus.txt"}, "data: path '../../outside/corpus.txt' escapes the root", (15, 27)),
        ({"alphas": "../../outside/alphas.json"}, "alphas file: path '../../outside/alphas.json' escapes", (12, 23)),
        ({"init": "../../outside/run"}, "stage 'align': init: path '../../outside/run' escapes the root", (15, 74)),
        ({"frm": "/etc"}, "path '/etc' escapes the root", (8, 11)),
        ({"frm": '"~/models/ssm"'}, "path '~/models/ssm' escapes the root", (8, 11)),
    ],
)
def test_each_kind_of_path_is_checked(tree: Path, field: dict, fragment: str, position: tuple[int, int]) -> None:
    (d,) = escapes(spec(tree, **field), tree / "root" / "specs")
    assert fragment in d.message and at(d) == position, d.render()


def test_a_sibling_with_the_same_prefix_is_outside(tree: Path) -> None:
    """root/specs-evil is not inside root/specs although its name starts the same."""
    (d,) = escapes(spec(tree, frm="../specs-evil/ssm"), tree / "root" / "specs")
    assert "specs-evil" in d.message


def test_symlinks_are_followed(tree: Path) -> None:
    specs = tree / "root" / "specs"
    (specs / "link-out").symlink_to(tree / "outside" / "ssm", target_is_directory=True)
    (specs / "link-in").symlink_to(specs / "models" / "ssm", target_is_directory=True)
    (d,) = escapes(spec(tree, frm="link-out"), specs)
    assert "it resolves to " + str((tree / "outside" / "ssm").resolve()) in d.message
    assert load_spec(spec(tree, frm="link-in"), root=specs).num_blocks == 2
    # a root that is itself reached through a symlink
    (tree / "root-link").symlink_to(tree / "root", target_is_directory=True)
    assert load_spec(spec(tree, frm="models/ssm"), root=tree / "root-link" / "specs").num_blocks == 2


def test_a_missing_path_outside_the_root_is_reported_as_escaping(tree: Path) -> None:
    (d,) = problems(spec(tree, frm="../../nowhere/ssm"), tree / "root" / "specs")
    assert "escapes the root" in d.message  # not "no such directory": the path may not be used at all


def test_every_escape_is_reported_at_once(tree: Path) -> None:
    path = spec(tree, frm="../../outside/ssm", tokenizer="../../outside/tok", data="../../outside/corpus.txt",
                alphas="../../outside/alphas.json", init="../../outside/run")
    found = escapes(path, tree / "root" / "specs")
    assert len(found) == 5
    assert found == sorted(found, key=at)


def test_hub_ids_are_not_paths(tree: Path) -> None:
    path = spec(tree, frm="hf:state-spaces/mamba-130m-hf", data="hf:some/dataset")
    with pytest.raises(SpecError) as info:
        load_spec(path, root=tree / "root" / "specs")
    assert not [d for d in info.value.diagnostics if "escapes" in d.message], info.value


def test_resolve_takes_a_root(tree: Path) -> None:
    parsed = parse_file(spec(tree, frm="../../outside/ssm"))
    assert resolve(parsed).num_blocks == 2
    with pytest.raises(SpecError, match="escapes the root"):
        resolve(parsed, root=tree / "root" / "specs")
    with pytest.raises(SpecError, match="escapes the root"):
        resolve(parsed, root=str(tree / "root" / "specs"))  # a string works too


@pytest.mark.parametrize(
    "frm, fragment",
    [('"a\\0b"', "invalid path"), ("x" * 5000, "File name too long"), ("loop", "Too many levels of symbolic links")],
)
def test_unusable_paths_are_located_errors(tree: Path, frm: str, fragment: str) -> None:
    specs = tree / "root" / "specs"
    os.symlink("loop", specs / "loop")  # a symlink to itself
    for root in (None, specs):
        (d,) = problems(spec(tree, frm=frm), root)
        assert fragment in d.message and at(d) == (8, 11), d.render()
        assert len(d.message) < 300  # a 5000-character path is shortened


# ---- the command line --------------------------------------------------------------------------------
def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_validate_root(tree: Path) -> None:
    path = spec(tree, frm="../../outside/ssm")
    assert run("validate", path).exit_code == 0
    result = run("validate", "--root", tree / "root" / "specs", path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{path}:8:11: error: component 'ssm': path '../../outside/ssm' escapes the root" in result.output
    assert run("validate", "--root", tree / "root", path).exit_code == 2
    assert run("validate", "--root", tree, path).exit_code == 0


def test_compile_root(tree: Path) -> None:
    path = spec(tree, data="../../outside/corpus.txt")
    out = tree / "out"
    result = run("compile", "--root", tree / "root" / "specs", path, "-o", out)
    assert result.exit_code == 2 and f"{path}:15:27: error: data: path" in result.output
    assert not out.exists()
    result = run("compile", "--root", tree, path, "-o", out)
    assert result.exit_code == 0, result.output
    assert (out / "plan.json").exists()


def test_train_root(tree: Path) -> None:
    path = spec(tree, alphas="../../outside/alphas.json")
    out = tree / "run"
    result = run("train", "--root", tree / "root" / "specs", path, "-o", out, "--max-steps", "1", "-q")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{path}:12:23: error: alphas file: path" in result.output
    assert not out.exists()


def test_root_must_be_an_existing_directory(tree: Path) -> None:
    path = spec(tree)
    result = run("validate", "--root", tree / "nope", path)
    assert result.exit_code == 2 and "does not exist" in result.output
    result = run("validate", "--root", path, path)
    assert result.exit_code == 2 and "is a file" in result.output


def test_a_data_directory_with_a_file_linked_out_of_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("inside " * 20)
    (tmp_path / "secret.txt").write_text("outside " * 20)
    (root / "data" / "b.txt").symlink_to(tmp_path / "secret.txt")
    text = SMALL.replace('recall(vocab=16, length=16)', 'text(data, block=8)').replace("name: small\n", "name: small\ntokenizer: bytes\n").replace("vocab_size: 64", "vocab_size: 300")
    path = write_spec(root, text)
    load_spec(path)  # without a root, allowed
    with pytest.raises(SpecError) as err:
        load_spec(path, root=root)
    assert any("b.txt in 'data'" in d.message and "escapes the root" in d.message for d in err.value.diagnostics)


@pytest.mark.parametrize("field, value", [("tokenizer", "hf:/etc"), ("tokenizer", "hf:../x/y"),
                                          ("data", "text(hf:/abs/path, block=8)"), ("from", "hf:/abs/model")])
def test_hub_ids_that_are_paths_are_refused(tmp_path, field, value):
    """A loader given hf:/abs/path reads the disk: no Hub id looks like a path."""
    text = SMALL.replace("vocab_size: 64", "vocab_size: 300")
    if field == "tokenizer":
        text = text.replace("name: small\n", f"name: small\ntokenizer: \"{value}\"\n")
    elif field == "data":
        text = text.replace("recall(vocab=16, length=16)", value).replace("name: small\n", "name: small\ntokenizer: bytes\n")
    else:
        text = text.replace("init: {family: mamba, hidden_size: 24, layers: 3, vocab_size: 300}", f"from: \"{value}\"")
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_spec(path, root=tmp_path)
    assert any("Hub id" in d.message for d in err.value.diagnostics), [d.render() for d in err.value.diagnostics]
