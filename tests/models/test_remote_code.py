"""No file of a model directory runs as code unless the user asks (``--trust-remote-code``).

A saved hybrid and a plain export are given Python files that leave a mark when imported: the hybrid's own
``configuration_hybridc.py`` and ``modeling_hybridc.py`` (its ``config.json``'s ``auto_map`` names them), and, in
both, a tokenizer module that ``tokenizer_config.json``'s ``auto_map`` names (the plain export's ``config.json``
names a model module too). Every command a user runs on them -- ``eval --data``, ``generate``, ``discretize``, and
``validate`` and ``train`` with the export as a component and as the tokenizer -- must leave no mark;
hybridc's own classes are registered in the process and need none of these files. ``eval --tasks`` (lm-eval)
is checked in the slow part: no mark without the flag, a mark (and a clean error) with it."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridc.cli import main
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.specs import write_spec

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: trusted
    tokenizer: bytes
    components:
      attn:
        init: {family: llama, hidden_size: 32, layers: 2, heads: 4, vocab_size: 259, max_length: 48}
        blocks: split(2)
      ssm:
        init: {family: mamba, hidden_size: 24, layers: 2, vocab_size: 260}
        blocks: split(2)
    hybrid:
      mixture: fixed([[0.9, 0.1], [0.8, 0.2]])
    """)
TEXT = "the cat sat on the mat; a dog ran after it. " * 20


def plant(directory: Path, module: str, marks: Path) -> tuple[Path, Path]:
    """``directory/module.py``: a module that writes ``marks/<directory name>-<module>`` when imported; (the
    module's file, its mark)."""
    mark = marks / f"{directory.name}-{module}"
    source = directory / f"{module}.py"
    source.write_text(f"import pathlib\npathlib.Path({str(mark)!r}).write_text('imported')\n"
                      "class Planted:\n    pass\n")
    return source, mark


def add_auto_map(path: Path, entries: dict) -> None:
    data = json.loads(path.read_text())
    data["auto_map"] = {**data.get("auto_map", {}), **entries}
    path.write_text(json.dumps(data, indent=2))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(root, saved hybrid, plain export, [(each planted module, the mark it would leave)])."""
    root = tmp_path_factory.mktemp("remote-code")
    (root / "corpus.txt").write_text(TEXT)
    model = lower(load_spec(write_spec(root, SPEC)), pretrained=False).eval()
    model.save_pretrained(root / "saved")
    alone = SPEC.replace("fixed([[0.9, 0.1], [0.8, 0.2]])", "fixed([[1.0, 0.0], [1.0, 0.0]])\n  embeddings: attn\n  "
                                                            "head: attn\n  projector: {attn: none, ssm: linear}")
    one_hot = lower(load_spec(write_spec(root, alone, "plain.yaml")), pretrained=False)
    exported = CliRunner().invoke(main, ["discretize", str(_saved(one_hot, root / "one-hot")), "-o", str(root / "plain")])
    assert exported.exit_code == 0 and "plain llama model" in exported.output, exported.output
    marks_dir = root / "marks"
    marks_dir.mkdir()
    saved, plain = root / "saved", root / "plain"
    assert "configuration_hybridc.py" in {p.name for p in saved.iterdir()}  # (what auto_map names)
    marks = [plant(saved, "configuration_hybridc", marks_dir), plant(saved, "modeling_hybridc", marks_dir)]
    for directory in (saved, plain):
        marks.append(plant(directory, "planted_tokenizer", marks_dir))
        add_auto_map(directory / "tokenizer_config.json",
                     {"AutoTokenizer": ["planted_tokenizer.Planted", "planted_tokenizer.Planted"]})
    marks.append(plant(plain, "planted_model", marks_dir))
    add_auto_map(plain / "config.json", {"AutoConfig": "planted_model.Planted",
                                         "AutoModelForCausalLM": "planted_model.Planted"})
    return root, saved, plain, marks


def _saved(model, directory: Path) -> Path:
    model.save_pretrained(directory)
    return directory


def test_every_planted_module_leaves_its_mark_when_imported(planted, tmp_path):
    """The check below can fail: each planted file, imported, writes its mark (then the marks are cleared)."""
    root, _, _, marks = planted
    for source, mark in marks:
        runpy.run_path(str(source))
        assert mark.read_text() == "imported"
        mark.unlink()


def test_no_command_imports_a_file_of_the_model_directory(planted, tmp_path):
    root, saved, plain, marks = planted
    data = f"text({root / 'corpus.txt'}, block=16)"
    spec = write_spec(tmp_path, textwrap.dedent(f"""\
        hybridc: 1
        name: from-plain
        tokenizer: {plain}
        components:
          attn: {{from: {plain}, blocks: split(2)}}
          ssm:
            init: {{family: mamba, hidden_size: 24, layers: 2, vocab_size: 259}}
            blocks: split(2)
        hybrid: {{mixture: "fixed([[0.5, 0.5], [0.5, 0.5]])"}}
        train:
          stages:
            - {{name: finetune, data: "{data}", steps: 1, batch_size: 2}}
        """))
    runner = CliRunner()
    for args in (["eval", str(saved), "--data", data], ["generate", str(saved), "the", "--max-new-tokens", "2"],
                 ["discretize", str(saved), "-o", str(tmp_path / "out")],
                 ["eval", str(plain), "--data", data], ["generate", str(plain), "the", "--max-new-tokens", "2"],
                 ["validate", str(spec)],
                 ["train", str(spec), "-o", str(tmp_path / "run"), "-q"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        imported = [str(source) for source, mark in marks if mark.exists()]
        assert not imported, f"{' '.join(args[:1])} imported {imported}"


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tasks")
    rows = [{"question": f"the {a} sat on the", "choices": ["mat", "zq"], "answer": 0} for a in ("cat", "dog")]
    (directory / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "trust_mc.yaml").write_text(textwrap.dedent(f"""\
        task: trust_mc
        dataset_path: json
        dataset_kwargs: {{data_files: {{test: {directory / "mc.jsonl"}}}}}
        test_split: test
        output_type: multiple_choice
        doc_to_text: "{{{{question}}}}"
        doc_to_choice: "{{{{choices}}}}"
        doc_to_target: "{{{{answer}}}}"
        metric_list: [{{metric: acc}}]
        """))
    return directory


@pytest.mark.slow  # lm-eval indexes its task library first (about 20 s); CI's long part runs it (.ci/run)
def test_eval_tasks_runs_the_directorys_code_only_with_trust_remote_code(planted, tasks, tmp_path, monkeypatch,
                                                                          capfd):
    _, saved, _, marks = planted
    monkeypatch.chdir(tmp_path)  # (outside a git repository: lm-eval's git probe must not print git's "fatal")
    done = CliRunner().invoke(main, ["eval", str(saved), "--tasks", "trust_mc", "--include-path", str(tasks)],
                              env={"HYBRIDC_DEBUG": None})
    assert done.exit_code == 0, done.output
    assert "trust_mc" in done.output and not [str(source) for source, mark in marks if mark.exists()]
    assert "not a git repository" not in capfd.readouterr().err
    # asked for: in a process of its own (transformers copies the code it runs into its modules cache)
    asked = subprocess.run([sys.executable, "-m", "hybridc", "eval", str(saved), "--tasks", "trust_mc",
                            "--include-path", str(tasks), "--trust-remote-code"], capture_output=True, text=True,
                           cwd=tmp_path, env={**{k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"},
                                              "HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert [str(source) for source, mark in marks if mark.exists()], asked.stderr[-2000:]  # the directory's code ran
    assert asked.returncode == 1 and "Traceback" not in asked.stderr and "cannot load the model" in asked.stderr
