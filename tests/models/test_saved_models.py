"""A run's saved models are the models that were trained, as a user meets them: the run directory moved
elsewhere, the component sources (and their tokenizer) deleted, then `hybridc eval`, `discretize` and
`generate`, transformers' Auto classes, and a fresh process. The reference numbers are the run's own
training table (its ``test`` event in metrics.jsonl); component names sort the other way round from
the spec's order (zattn, assm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.components.adapters import build_model
from hybridc.components.registry import get_family
from hybridc.models.hybrid import HybridModel
from hybridc.spec import load_spec
from hybridc.inference.evaluate import evaluate_directory
from hybridc.train.run import TrainOptions, train
from tests.conftest import SAMPLE_TEXT
from tests.tiny_models import tiny_config

CORPUS = " ".join([SAMPLE_TEXT, "the quick brown fox jumps over the lazy dog"] * 60)
METRICS = ("loss", "accuracy", "macro_accuracy", "perplexity")


def make_sources(root: Path, bpe_tokenizer_files: dict[str, Path]) -> dict[str, Path]:
    """zattn: a GPT-Neo (local attention window 4) holding the tokenizer; assm: a Mamba."""
    dirs = {"zattn": root / "sources" / "zattn", "assm": root / "sources" / "assm"}
    build_model(get_family("gpt-neo"), tiny_config("gpt-neo", window_size=4), seed=21).save_pretrained(dirs["zattn"])
    build_model(get_family("mamba"), tiny_config("mamba"), seed=22).save_pretrained(dirs["assm"])
    for name, path in bpe_tokenizer_files.items():
        shutil.copyfile(path, dirs["zattn"] / name)
    return dirs


def spec_text(dirs: dict[str, Path], corpus: Path, hybrid: str, stages: str) -> str:
    return textwrap.dedent(f"""\
        hybridc: 1
        name: saved
        tokenizer: zattn
        components:
          zattn: {{from: {dirs['zattn']}, blocks: split(2)}}
          assm: {{from: {dirs['assm']}, blocks: split(2)}}
        hybrid: {hybrid}
        train:
          seed: 5
          checkpoint_every: 0
          stages:
        """) + textwrap.indent(textwrap.dedent(stages), "    ").replace(
        "DATA", f'"text({corpus.name}, block=16)"')  # beside the spec, as users write it; eval gets it absolute


def train_and_move(tmp_path: Path, bpe_tokenizer_files, hybrid: str, stages: str):
    """Train, then move the run elsewhere and delete the component sources."""
    dirs = make_sources(tmp_path, bpe_tokenizer_files)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(dirs, corpus, hybrid, stages))
    result = train(load_spec(spec), TrainOptions(out_dir=tmp_path / "run", quiet=True), say=lambda _: None)
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(tmp_path / "run", moved)
    shutil.rmtree(tmp_path / "run")
    shutil.rmtree(tmp_path / "sources")
    return result, moved, f"text({corpus}, block=16)"


def table(moved: Path) -> dict:
    """The test numbers the run reported (its training table), read back from metrics.jsonl."""
    events = [json.loads(line) for line in (moved / "metrics.jsonl").read_text().splitlines()]
    (test,) = [e for e in events if e["event"] == "test"]
    return {k: test[k] for k in METRICS}


def numbers(result: dict) -> dict:
    return {k: result[k] for k in METRICS}


def test_a_discretized_run_reproduces_its_table_from_a_moved_directory(tmp_path, bpe_tokenizer_files, monkeypatch):
    result, moved, data = train_and_move(tmp_path, bpe_tokenizer_files, '{mixture: "fixed([[0.2, 0.8], [0.9, 0.1]])"}', """\
        - {name: finetune, data: DATA, steps: 3, batch_size: 4}
        - {name: discretize}
        - {name: retrain, steps: 2, batch_size: 4}
        """)
    assert result.selection == ("assm", "zattn")  # argmax per block, named by the spec's order
    expected = table(moved)
    assert expected == numbers(result.test)

    # hybridc eval, three calls alike: twice here, once in a fresh process
    assert numbers(evaluate_directory(moved, data)) == expected
    assert numbers(evaluate_directory(moved / "final", data)) == expected
    # (the spec said `corpus.txt`, eval's `data` is absolute) spelled otherwise again: one split
    (tmp_path / "linked").symlink_to(tmp_path, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert numbers(evaluate_directory(moved, "text(./../linked/corpus.txt, block=16)")) == expected
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"}
    fresh = subprocess.run([sys.executable, "-m", "hybridc", "eval", str(moved), "--data", data],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    printed = dict(line.split(": ", 1) for line in fresh.stdout.splitlines())
    assert printed["loss"] == f"{expected['loss']:.6g}" and printed["accuracy"] == f"{expected['accuracy']:.6g}"

    # hybridc discretize of the (already discretized) final: the same model, a hybrid directory
    out = CliRunner().invoke(main, ["discretize", str(moved), "-o", str(tmp_path / "exported")])
    assert out.exit_code == 0, out.output
    assert "selection: assm | zattn" in out.output
    assert numbers(evaluate_directory(tmp_path / "exported", data)) == expected

    # transformers' Auto classes and the tokenizer inside the directory
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    final = moved / "final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    ids = tokenizer(SAMPLE_TEXT, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert ids.shape[1] > 3 and int(ids.max()) < 80
    auto = AutoModelForCausalLM.from_pretrained(final).eval()
    ours = HybridModel.from_pretrained(final).eval()
    assert AutoConfig.from_pretrained(final).model_type == "hybridc"
    assert isinstance(AutoModel.from_pretrained(final), HybridModel)
    with torch.no_grad():
        assert torch.equal(auto(ids).logits, ours(ids).logits)
    card = (final / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: hybridc" in front and "pipeline_tag: text-generation" in front and "gpt-neo" in front

    # generate from the moved directory, twice alike
    first = CliRunner().invoke(main, ["generate", str(moved), "the cat", "--max-new-tokens", "6"])
    second = CliRunner().invoke(main, ["generate", str(moved), "the cat", "--max-new-tokens", "6"])
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout  # (stderr: progress)


def test_a_plain_export_reproduces_its_table(tmp_path, bpe_tokenizer_files):
    """Every block on assm, its embedding and head: discretize exports a plain Mamba directory that
    transformers loads alone, with the tokenizer, and eval reproduces the run's numbers."""
    result, moved, data = train_and_move(
        tmp_path, bpe_tokenizer_files, '{mixture: "fixed([[0.1, 0.9], [0.3, 0.7]])", embeddings: assm, head: assm}', """\
        - {name: finetune, data: DATA, steps: 3, batch_size: 4}
        - {name: discretize}
        - {name: retrain, steps: 2, batch_size: 4}
        """)
    out = CliRunner().invoke(main, ["discretize", str(moved), "-o", str(tmp_path / "plain")])
    assert out.exit_code == 0, out.output
    assert "plain mamba model" in out.output
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "plain")
    assert type(plain).__name__ == "MambaForCausalLM"
    assert AutoTokenizer.from_pretrained(tmp_path / "plain")(SAMPLE_TEXT)["input_ids"]
    expected = table(moved)
    got = numbers(evaluate_directory(tmp_path / "plain", data))
    # transformers' own Mamba forward (its scan) against our segments: the same predictions, the same loss
    # to float rounding (equal to the last bit here; 1e-6 relative allows another BLAS)
    assert (got["accuracy"], got["macro_accuracy"]) == (expected["accuracy"], expected["macro_accuracy"])
    assert all(abs(got[k] - expected[k]) <= 1e-6 * abs(expected[k]) for k in ("loss", "perplexity")), (got, expected)
    front = (tmp_path / "plain" / "README.md").read_text().split("---")[1]
    assert "library_name: transformers" in front
    generated = CliRunner().invoke(main, ["generate", str(tmp_path / "plain"), "the cat", "--max-new-tokens", "4"])
    assert generated.exit_code == 0, generated.output


@pytest.mark.parametrize("mixture", ["search", "fixed([[0.2, 0.8], [0.9, 0.1]])"])
def test_discretize_names_the_argmax_component_of_the_saved_alphas(tmp_path, bpe_tokenizer_files, mixture):
    """A continuous run's final/: the selection is the argmax of the alphas the run logged (its last
    train event, columns named by the stage event's components), whatever the names' sort order."""
    stage = ("- {name: search, data: DATA, steps: 6, batch_size: 4, search: \"darts(lr=0.5)\"}" if mixture == "search"
             else "- {name: finetune, data: DATA, steps: 2, batch_size: 4}")
    result, moved, _ = train_and_move(tmp_path, bpe_tokenizer_files, f'{{mixture: "{mixture}"}}', stage + "\n")
    events = [json.loads(line) for line in (moved / "metrics.jsonl").read_text().splitlines()]
    (stage_event,) = [e for e in events if e["event"] == "stage"]
    assert stage_event["components"] == ["zattn", "assm"]
    last = [e for e in events if e["event"] == "train"][-1]["alphas"]
    expected = [stage_event["components"][max(range(2), key=row.__getitem__)] for row in last]
    out = CliRunner().invoke(main, ["discretize", str(moved), "-o", str(tmp_path / "d")])
    assert out.exit_code == 0, out.output
    assert f"selection: {' | '.join(expected)}" in out.output
    assert json.loads((tmp_path / "d" / "config.json").read_text()).get("selection", expected) == expected
    if mixture != "search":
        assert expected == ["assm", "zattn"]
        plan = json.loads((moved / "plan.json").read_text())
        assert plan["components"] == ["zattn", "assm"]


def test_a_run_saved_by_the_previous_release_is_repaired_by_resuming_it(tmp_path, bpe_tokenizer_files):
    """The refusal's hint works: a run whose spec.lock.yaml and final/config.json have lock version 1
    (components as a mapping; config.json sorted) is rewritten by `train --resume` from its last
    checkpoint, and the new final/ is the trained model."""
    dirs = make_sources(tmp_path, bpe_tokenizer_files)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(dirs, corpus, '{mixture: "fixed([[0.2, 0.8], [0.9, 0.1]])"}',
                              "- {name: finetune, data: DATA, steps: 2, batch_size: 4}\n"))
    run = tmp_path / "run"
    first = train(load_spec(spec), TrainOptions(out_dir=run, quiet=True), say=lambda _: None)
    import yaml

    from hybridc.errors import CompileError

    def to_v1(lock: dict) -> dict:
        lock["hybridc_lock"] = 1
        for part in ("spec", "resolved"):
            lock[part]["components"] = {c.pop("name"): c for c in lock[part]["components"]}
        return lock

    lock = yaml.safe_load((run / "spec.lock.yaml").read_text())
    (run / "spec.lock.yaml").write_text(yaml.safe_dump(to_v1(lock), sort_keys=False))
    config = json.loads((run / "final" / "config.json").read_text())
    config["lock"] = to_v1(config["lock"])
    (run / "final" / "config.json").write_text(json.dumps(config, sort_keys=True))
    with pytest.raises(CompileError, match="alphabetical order"):
        HybridModel.from_pretrained(run / "final")
    again = train(load_spec(spec), TrainOptions(out_dir=run, resume=True, quiet=True), say=lambda _: None)
    assert again.test == first.test
    repaired = HybridModel.from_pretrained(run / "final")
    assert repaired.graph.names == ("zattn", "assm")
    assert numbers(evaluate_directory(run, f"text({corpus}, block=16)")) == numbers(first.test)
