"""The hostile-artifact corpus (tests/bad_artifacts/cases.yaml): each named damage to a saved model, an export's
place or a stopped run, the command a user runs next, and what it must answer (exit status, what it says).
Beyond each case's own answer, every case must end without a traceback or a hang and leave the user's files
(``outside/``, and each case's ``kept`` paths) as they were. The random counterpart is test_artifact_fuzz.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from hybridc.train.checkpoint import state_digest
from tests.artifacts import (check_outcome, commands, make_base, make_distilling, run_guarded, tree_digest,
                             workspace)

CASES = yaml.safe_load((Path(__file__).parent / "bad_artifacts" / "cases.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def base(tmp_path_factory, bpe_tokenizer_files) -> Path:
    return make_base(tmp_path_factory.mktemp("bad-artifacts"), bpe_tokenizer_files)


@pytest.fixture(scope="module")
def distilling(base) -> Path:
    """The base, with its run stopped inside a distill stage beside it (built once, for the cases that need it)."""
    make_distilling(base)
    return base


def _replace(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def apply(step: dict, root: Path) -> None:
    """One damage step of a case (see the corpus file's header) on the workspace ``root``."""
    (op, arg), = step.items()
    at = root / (arg["path"] if isinstance(arg, dict) else arg)
    if op == "delete":
        _replace(at)
    elif op in ("fifo", "directory"):
        _replace(at)
        os.mkfifo(at) if op == "fifo" else at.mkdir()
    elif op == "truncate":
        at.write_bytes(at.read_bytes()[: at.stat().st_size // 2])
    elif op == "symlink":  # (a directory: its copy, linked in its place)
        copy = root / "outside" / f"copy-of-{at.name}"
        if at.is_dir() and not at.is_symlink():
            shutil.copytree(at, copy, symlinks=True)
            shutil.rmtree(at)
        else:
            copy.write_bytes(at.read_bytes())
            at.unlink()
        at.symlink_to(copy)
    elif op == "link":
        at.symlink_to(root / arg["to"])
    elif op == "write":
        at.parent.mkdir(parents=True, exist_ok=True)
        at.write_bytes(arg["text"].encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff") * arg.get("times", 1))
    elif op == "json":
        data = json.loads(at.read_text())
        holder = data
        for key in arg["at"][:-1]:
            holder = holder[key]
        holder[arg["at"][-1]] = arg["value"]
        at.write_text(json.dumps(data, indent=2))
    elif op in ("drop_tensor", "add_tensor"):
        tensors = load_file(str(at))
        if op == "drop_tensor":
            del tensors[arg["name"]]
        else:
            tensors[arg["name"]] = torch.zeros(2, 2)
        save_file(tensors, str(at), metadata={"format": "pt"})
    elif op == "index_outside":
        weights = at / "model.safetensors"
        names = list(load_file(str(weights)))
        shutil.move(weights, root / "outside" / "weights.safetensors")
        (at / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {}, "weight_map": {n: "../../outside/weights.safetensors" for n in names}}))
    elif op == "rehash":
        state = json.loads((at / "state.json").read_text())
        for name in ("model.safetensors", "optimizer.pt"):
            state["manifest"][name] = hashlib.sha256((at / name).read_bytes()).hexdigest()
        state["manifest"]["state.json"] = state_digest(state)
        (at / "state.json").write_text(json.dumps(state, indent=2))
    else:
        raise ValueError(f"unknown damage step {op!r}")


def kept_digest(root: Path, paths: list[str]) -> dict[str, str]:
    out = {}
    for p in paths:
        at = root / p
        if at.is_symlink():
            out[p] = "-> " + os.readlink(at)
        elif at.is_dir():
            out[p] = str(tree_digest(at))
        else:
            out[p] = hashlib.sha256(at.read_bytes()).hexdigest()
    return out


def test_every_case_is_well_formed():
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names)), "case names are unique"
    for case in CASES:
        assert set(case) <= {"name", "stopped", "distilling", "damage", "command", "exit", "says", "kept"}, case["name"]
        assert case["command"] in ("eval", "generate", "discretize", "resume") and case["exit"] in (0, 1, 2)
        assert not (case.get("stopped") and case.get("distilling")), case["name"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_a_damaged_artifact_gets_its_answer(request, base, tmp_path, case):
    distilling = case.get("distilling", False)
    if distilling:
        request.getfixturevalue("distilling")
    before = tree_digest(base)
    run, outside = workspace(base, tmp_path / "ws", stopped=case.get("stopped", False), distilling=distilling)
    root = run.parent
    for step in case["damage"]:
        apply(step, root)
    outside_before = tree_digest(outside)
    kept = kept_digest(root, case.get("kept", []))
    spec = "distill.yaml" if distilling else "spec.yaml"
    result = run_guarded(commands(base, run, root / "out", spec)[case["command"]])
    output = result.output
    check_outcome(result, case["name"])
    assert result.exit_code == case["exit"], output
    for fragment in case.get("says", []):
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    assert tree_digest(outside) == outside_before
    assert kept_digest(root, case.get("kept", [])) == kept
    assert tree_digest(base) == before
