"""Damaged model directories are refused with an error saying what is wrong (exit 1, no traceback, never
exit 70), and nothing damaged loads silently: tensors missing, unexpected or of another shape; a weights
index naming files outside the directory; config.json, generation_config.json or a plain export's
hybridc.json that is not a JSON object; a lock with absurd sizes or a component listed twice. Through
the commands a user runs (eval, generate, discretize) on a run and on a plain export, and through
transformers' ``from_pretrained``. Each test damages a copy of one tiny run trained once per module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from hybridc.cli import main
from hybridc.errors import RunError
from tests.train.helpers import run

DATA = "recall(vocab=16, length=16, examples=64)"
SPEC = textwrap.dedent("""\
    hybridc: 1
    name: damaged
    tokenizer: bytes
    components:
      attn:
        init: {family: gpt-neox, hidden_size: 16, layers: 2, heads: 2, vocab_size: 259, max_length: 32}
        blocks: split(2)
      ssm:
        init: {family: mamba, hidden_size: 24, layers: 2, vocab_size: 259}
        blocks: split(2)
    hybrid:
      mixture: fixed([[0.2, 0.8], [0.3, 0.7]])
      embeddings: ssm
      head: ssm
    train:
      seed: 3
      checkpoint_every: 0
      stages:
        - {name: finetune, data: "%s", steps: 2, batch_size: 4}
    """ % DATA)
REFUSED = RunError.exit_code  # a damaged directory is refused like a pickled or empty weights file (test_saved.py)


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    """A trained run (its final/ is a mixed hybrid) and the plain Mamba `hybridc discretize` exports from it."""
    root = tmp_path_factory.mktemp("damaged")
    run(root, SPEC)
    out = CliRunner().invoke(main, ["discretize", str(root / "run"), "-o", str(root / "plain")])
    assert out.exit_code == 0 and "plain mamba model" in out.output, out.output
    shutil.rmtree(root / "run" / "checkpoints", ignore_errors=True)
    return {"run": root / "run", "plain": root / "plain"}


def copy_of(originals: dict[str, Path], kind: str, tmp_path: Path) -> tuple[Path, Path]:
    """(what the user passes, the model directory inside it) of a fresh copy of the run or the plain export."""
    top = tmp_path / kind
    shutil.copytree(originals[kind], top)
    return top, (top / "final" if kind == "run" else top)


def command(name: str, top: Path, tmp_path: Path) -> list[str]:
    return {"eval": ["eval", str(top), "--data", DATA],
            "generate": ["generate", str(top), "hi", "--max-new-tokens", "2"],
            "discretize": ["discretize", str(top), "-o", str(tmp_path / "out")]}[name]


def refused(name: str, top: Path, tmp_path: Path, *needles: str) -> str:
    """Run the command on ``top``: refused (exit 1) with every needle in its message, no traceback."""
    result = CliRunner().invoke(main, command(name, top, tmp_path))
    output = result.output
    assert result.exit_code == REFUSED, output
    assert output.startswith("error: ") or "\nerror: " in output, output
    assert "Traceback" not in output and "internal error" not in output, output
    for needle in needles:
        assert needle in output, output
    return output


def edit_tensors(directory: Path, edit: Callable[[dict], None]) -> None:
    path = directory / "model.safetensors"
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path), metadata={"format": "pt"})


def edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    result = edit(data)
    path.write_text(json.dumps(data if result is None else result))


# ---- the weights ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,name", [("run", "eval"), ("run", "generate"), ("run", "discretize"), ("plain", "eval"),
                                       ("plain", "generate")])
def test_a_missing_tensor_is_refused_and_named(originals, tmp_path, kind, name):
    top, directory = copy_of(originals, kind, tmp_path)
    dropped = "blocks.1.segments.ssm.norm_f.weight" if kind == "run" else "backbone.norm_f.weight"
    edit_tensors(directory, lambda state: state.pop(dropped))
    refused(name, top, tmp_path, f"missing {dropped}", str(directory))
    assert not (tmp_path / "out").exists()


def test_many_missing_tensors_are_named_first_few_and_counted(originals, tmp_path):
    top, directory = copy_of(originals, "run", tmp_path)
    gone = sorted(k for k in load_file(str(directory / "model.safetensors")) if ".segments.attn." in k)
    edit_tensors(directory, lambda state: [state.pop(k) for k in gone])
    output = refused("eval", top, tmp_path, f"missing {', '.join(gone[:3])}, ... ({len(gone)} in all)")
    assert gone[3] not in output


@pytest.mark.parametrize("kind", ["run", "plain"])
def test_an_unexpected_tensor_is_refused_and_named(originals, tmp_path, kind):
    top, directory = copy_of(originals, kind, tmp_path)
    edit_tensors(directory, lambda state: state.update({"extra.weight": next(iter(state.values())).clone()}))
    refused("eval", top, tmp_path, "unexpected extra.weight")


def test_a_tensor_of_another_shape_is_refused_before_loading(originals, tmp_path):
    top, directory = copy_of(originals, "run", tmp_path)
    edit_tensors(directory, lambda state: state.update(
        {"embed.sources.ssm.weight": state["embed.sources.ssm.weight"][:100]}))
    refused("generate", top, tmp_path, "of another shape embed.sources.ssm.weight [100, 24] (the model's is [259, 24])")


def test_weights_under_the_projector_names_of_earlier_releases_still_load(originals, tmp_path):
    """Legacy names (projectors in_proj/out_proj) are renamed, not counted unexpected: the same numbers."""
    top, directory = copy_of(originals, "run", tmp_path)
    before = CliRunner().invoke(main, command("eval", top, tmp_path))
    assert before.exit_code == 0, before.output

    def rename(state: dict) -> None:
        for key in [k for k in state if ".projector_" in k]:
            state[key.replace(".projector_in.", ".in_proj.").replace(".projector_out.", ".out_proj.")] = state.pop(key)

    edit_tensors(directory, rename)
    assert any(".in_proj.attn." in k for k in load_file(str(directory / "model.safetensors")))
    after = CliRunner().invoke(main, command("eval", top, tmp_path))
    assert after.exit_code == 0, after.output
    assert after.stdout == before.stdout  # (the numbers; stderr has the progress and its times)


def shard(directory: Path, target: Path, entry: str) -> None:
    """Replace model.safetensors by an index naming ``entry`` for every tensor; the weights moved to ``target``."""
    shutil.move(directory / "model.safetensors", target)
    index = {"metadata": {}, "weight_map": {k: entry for k in load_file(str(target))}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("kind", ["run", "plain"])
@pytest.mark.parametrize("how", ["relative", "absolute", "link"])
def test_an_index_may_not_name_weights_outside_the_directory(originals, tmp_path, kind, how):
    top, directory = copy_of(originals, kind, tmp_path)
    target = tmp_path / "elsewhere.safetensors"
    entry = {"relative": os.path.relpath(target, directory), "absolute": str(target),
             "link": "model-00001-of-00001.safetensors"}[how]
    shard(directory, target, entry)
    if how == "link":
        (directory / entry).symlink_to(target)
    assert entry.startswith("..") or how != "relative"
    refused("eval", top, tmp_path, "model.safetensors.index.json", f"names {entry!r}", f"outside {directory}")


def test_a_sharded_model_inside_its_directory_loads(originals, tmp_path):
    top, directory = copy_of(originals, "run", tmp_path)
    before = CliRunner().invoke(main, command("eval", top, tmp_path))
    shard(directory, directory / "model-00001-of-00001.safetensors", "model-00001-of-00001.safetensors")
    after = CliRunner().invoke(main, command("eval", top, tmp_path))
    assert after.exit_code == 0, after.output
    assert after.stdout == before.stdout  # (the numbers; stderr has the progress and its times)


# ---- the JSON files ------------------------------------------------------------------------------------------

BAD_JSON = {
    "not JSON": (b'{"model_type": ', "is not valid JSON"),
    "a list": (b"[]", "holds a JSON list, not an object"),
    "not UTF-8": (b'{"model_type": "\xff\xfe"}', "is not UTF-8 text"),
    "a key twice": (b'{"model_type": "hybridc", "model_type": "mamba"}', "has the key 'model_type' twice"),
}


@pytest.mark.parametrize("kind,name", [("run", "eval"), ("run", "discretize"), ("plain", "generate")])
@pytest.mark.parametrize("damage", sorted(BAD_JSON))
def test_a_config_json_that_is_not_a_json_object_is_named(originals, tmp_path, kind, name, damage):
    top, directory = copy_of(originals, kind, tmp_path)
    content, message = BAD_JSON[damage]
    (directory / "config.json").write_bytes(content)
    refused(name, top, tmp_path, f"{directory / 'config.json'} {message}")


@pytest.mark.parametrize("kind", ["run", "plain"])
def test_a_damaged_generation_config_is_refused_not_ignored(originals, tmp_path, kind):
    top, directory = copy_of(originals, kind, tmp_path)
    (directory / "generation_config.json").write_text('{"eos_token_id": ')
    refused("generate", top, tmp_path, f"{directory / 'generation_config.json'} is not valid JSON")


def set_vocab(lock: dict, value) -> None:
    lock["resolved"]["vocab_size"] = value


RECORD_DAMAGE = {
    "a list": (lambda record: [], "hybridc.json holds a JSON list, not an object"),
    "no lock": (lambda record: record.pop("lock") and None, "hybridc.json has no lock"),
    "a lock that is a string": (lambda record: record.update(lock="x"), "lock is a JSON string, not an object"),
    "vocab_size 1e10": (lambda record: set_vocab(record["lock"], 1e10), "lock.resolved.vocab_size is 10000000000.0"),
    "a component twice": (lambda record: record["lock"]["resolved"]["components"].append(
        record["lock"]["resolved"]["components"][0]), "lists component 'attn' more than once"),
    "an unknown selection": (lambda record: record.update(selection=["ssm", "gone"]), "selection names 'gone'"),
}


@pytest.mark.parametrize("name", ["eval", "generate"])
@pytest.mark.parametrize("damage", sorted(RECORD_DAMAGE))
def test_a_damaged_export_record_is_named(originals, tmp_path, name, damage):
    top, directory = copy_of(originals, "plain", tmp_path)
    edit, message = RECORD_DAMAGE[damage]
    edit_json(directory / "hybridc.json", edit)
    refused(name, top, tmp_path, str(directory / "hybridc.json"), message)


def component_config(lock: dict, name: str) -> dict:
    return next(e for e in lock["resolved"]["components"] if e["name"] == name)["config"]


LOCK_DAMAGE = {
    "vocab_size 1e10": (lambda lock: set_vocab(lock, 1e10), "lock.resolved.vocab_size is 10000000000.0, not a size"),
    "a negative vocab_size": (lambda lock: set_vocab(lock, -5), "lock.resolved.vocab_size is -5, not a size"),
    "a string width": (lambda lock: lock["resolved"].update(width="24"), 'lock.resolved.width is "24", not a size'),
    "a vocab_size above the components'": (lambda lock: set_vocab(lock, 1000),
                                           "lock.resolved.vocab_size (1000) is larger than component"),
    "a component config of 2**40 tokens": (lambda lock: component_config(lock, "ssm").update(vocab_size=2**40),
                                           "config.vocab_size is 1099511627776, not a size"),
    "a fractional hidden size": (lambda lock: component_config(lock, "attn").update(hidden_size=2.5),
                                 "config.hidden_size is 2.5, not a size"),
    "no resolved part": (lambda lock: lock.pop("resolved"), "lock.resolved is missing"),
    "an unknown version": (lambda lock: lock.update(hybridc_lock=7), "lock.hybridc_lock is 7"),
}


@pytest.mark.parametrize("damage", sorted(LOCK_DAMAGE))
def test_a_damaged_lock_is_named(originals, tmp_path, damage):
    top, directory = copy_of(originals, "run", tmp_path)
    edit, message = LOCK_DAMAGE[damage]
    edit_json(directory / "config.json", lambda config: edit(config["lock"]) and None)
    refused("eval", top, tmp_path, str(directory / "config.json"), message)


def test_a_vocabulary_the_weights_do_not_hold_is_refused_before_allocating(originals, tmp_path):
    """Sizes within bounds but not the weights' (2**30 rows of 24): refused from the file headers and a model
    on the meta device, not by allocating 100 GB first."""
    top, directory = copy_of(originals, "run", tmp_path)
    edit_json(directory / "config.json",
              lambda config: component_config(config["lock"], "ssm").update(vocab_size=2**30))
    refused("eval", top, tmp_path,
            "of another shape embed.sources.ssm.weight [259, 24] (the model's is [1073741824, 24])")
    top, directory = copy_of(originals, "plain", tmp_path / "plain")
    edit_json(directory / "config.json", lambda config: config.update(vocab_size=2**30))
    refused("eval", top, tmp_path, "fewer than the 25,769,")


@pytest.mark.parametrize("where", ["spec", "resolved"])
@pytest.mark.parametrize("name", ["eval", "discretize"])
def test_a_component_listed_twice_is_refused(originals, tmp_path, where, name):
    top, directory = copy_of(originals, "run", tmp_path)
    edit_json(directory / "config.json",
              lambda config: config["lock"][where]["components"].append(config["lock"][where]["components"][-1]))
    refused(name, top, tmp_path, f"lock.{where}.components lists component 'ssm' more than once")


def test_a_plain_config_with_absurd_sizes_is_named(originals, tmp_path):
    top, directory = copy_of(originals, "plain", tmp_path)
    edit_json(directory / "config.json", lambda config: config.update(hidden_size=-3))
    refused("generate", top, tmp_path, f"{directory / 'config.json'}: hidden_size is -3, not a size")


# ---- transformers' from_pretrained and a fresh process -----------------------------------------------------

def test_from_pretrained_refuses_a_missing_tensor_instead_of_initialising_it(originals, tmp_path):
    import transformers

    import hybridc  # noqa: F401  (registers the hybridc model type)
    from hybridc.models.hybrid import HybridModel

    _, directory = copy_of(originals, "run", tmp_path)
    model, info = HybridModel.from_pretrained(directory, output_loading_info=True)
    assert not any(info.values())
    edit_tensors(directory, lambda state: state.pop("blocks.0.mix.weights"))
    for load in (transformers.AutoModelForCausalLM.from_pretrained, transformers.AutoModel.from_pretrained,
                 HybridModel.from_pretrained):
        with pytest.raises(RunError, match=r"missing blocks\.0\.mix\.weights"):
            load(directory)
    with pytest.raises(RunError, match="missing"):
        HybridModel.from_pretrained(directory, output_loading_info=True)


def test_from_pretrained_refuses_an_index_leaving_the_directory(originals, tmp_path):
    from hybridc.models.hybrid import HybridModel

    _, directory = copy_of(originals, "run", tmp_path)
    shard(directory, tmp_path / "elsewhere.safetensors", "../../elsewhere.safetensors")
    with pytest.raises(RunError, match="outside"):
        HybridModel.from_pretrained(directory)


def test_a_hugging_face_cache_snapshot_loads(originals, tmp_path):
    """A Hub cache snapshot's files are links into its repository's blobs/: that is not leaving the directory."""
    import torch

    from hybridc.models.hybrid import HybridModel

    repo = tmp_path / "models--someone--hybrid"
    snapshot = repo / "snapshots" / "0123abcd"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in (originals["run"] / "final").iterdir():
        shutil.copyfile(path, repo / "blobs" / f"blob-{path.name}")
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", f"blob-{path.name}"))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(HybridModel.from_pretrained(snapshot).eval()(ids).logits,
                           HybridModel.from_pretrained(originals["run"] / "final").eval()(ids).logits)


def test_a_fresh_process_refuses_a_damaged_directory_without_a_traceback(originals, tmp_path):
    top, directory = copy_of(originals, "plain", tmp_path)
    (directory / "hybridc.json").write_text("[]")
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"}
    result = subprocess.run([sys.executable, "-m", "hybridc", "eval", str(top), "--data", DATA], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == REFUSED, result.stderr
    assert "hybridc.json holds a JSON list, not an object" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
