"""The command line: exit codes, located errors without tracebacks, files written, torch-free commands."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml
from click.testing import CliRunner

from hybridc.cli import main
from tests.specs import SMALL, write_spec

BAD = SMALL.replace("blocks: 0..1, 1..3", "blocks: 0..1, 1..4").replace("[0.25, 0.75]]", "[0.25, 0.7]]")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_validate_ok_and_bad(tmp_path):
    good = write_spec(tmp_path, SMALL, "good.yaml")
    bad = write_spec(tmp_path, BAD, "bad.yaml")
    result = run("validate", good)
    assert result.exit_code == 0 and "ok (2 components, 2 blocks, width 32)" in result.output
    result = run("validate", good, bad)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    assert len(errors) == 2 and all(line.startswith(f"{bad}:") for line in errors)
    assert "2 errors found" in result.output


def test_fmt_check_write(tmp_path):
    path = write_spec(tmp_path, "# keep me\n" + SMALL)
    before = path.read_text()
    assert run("fmt", "--check", path).exit_code == 1
    assert path.read_text() == before
    printed = run("fmt", path)
    assert printed.exit_code == 0 and printed.output.startswith("# keep me\n")
    assert run("fmt", "--write", path).exit_code == 0
    assert path.read_text() == printed.output
    assert run("fmt", "--check", path).exit_code == 0


def test_fmt_never_touches_an_invalid_file(tmp_path):
    path = write_spec(tmp_path, "hybridc: 1\nname: x\ncomponents: {a: {init: {family: llama}, blokcs: 1}}\n")
    before = path.read_text()
    result = run("fmt", "--write", path)
    assert result.exit_code == 2 and "unknown key 'blokcs'" in result.output
    assert path.read_text() == before
    assert run("fmt", "--check", "--write", path).exit_code == 2  # usage error


def test_compile_writes_lock_plan_and_graph(tmp_path):
    path = write_spec(tmp_path, SMALL.replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "search").replace(
        '- {name: align, data: "recall(vocab=16, length=16)", steps: 5}',
        '- {name: search, data: "recall(vocab=16, length=16)", steps: 5}\n    - {name: discretize}\n'
        '    - {name: retrain, steps: 3}'))
    out = tmp_path / "out"
    result = run("compile", path, "-o", out, "--build")
    assert result.exit_code == 0, result.output
    assert "as the graph says" in result.output and "parameters by group" in result.output
    lock = yaml.safe_load((out / "spec.lock.yaml").read_text())
    assert [c["name"] for c in lock["resolved"]["components"]] == ["attn", "ssm"]  # the spec's order, a list
    assert lock["resolved"]["components"][1]["blocks"] == ["0..1", "1..3"]
    assert lock["spec"]["hybrid"]["mixture"] == "search"
    plan = json.loads((out / "plan.json").read_text())
    assert [s["kind"] for s in plan["stages"]] == ["search", "discretize", "retrain"]
    search = plan["stages"][0]
    assert search["search"]["algorithm"] == "dash" and "alphas" in search["train"]  # the default search
    assert search["trainable_params"] == sum(plan["params"].values())
    assert plan["stages"][2]["graph"] == "discretized" and plan["stages"][2]["trainable_params"] is None
    assert (out / "graph.dot").read_text().startswith("digraph")


def test_graph_formats(tmp_path):
    path = write_spec(tmp_path, SMALL)
    assert "b1/ssm/seg" in run("graph", path).output
    assert run("graph", path, "--format", "dot").output.startswith("digraph")
    result = run("graph", path, "--format", "png", "-o", tmp_path / "g.png")
    assert result.exit_code == 0 and (tmp_path / "g.png").stat().st_size > 1000
    assert run("graph", path, "--format", "png").exit_code == 2
    result = run("graph", path, "--discretize", "argmax")
    assert result.exit_code == 0 and "discretized: attn | ssm" in result.output
    assert run("graph", path, "--discretize", "attn").exit_code == 2


def test_graph_of_a_searched_spec_discretizes_a_runs_alphas(tmp_path):
    searched = write_spec(tmp_path, SMALL.replace("mixture: fixed([[0.5, 0.5], [0.25, 0.75]])", "mixture: search"))
    refused = run("graph", searched, "--discretize", "argmax")
    assert refused.exit_code == 2 and "--alphas RUN" in refused.output and "searches its mixture" in refused.output
    assert "has no hybrid.budget" in run("graph", path_of_fixed(tmp_path), "--discretize", "budget").output
    runs = tmp_path / "run"
    runs.mkdir()
    events = [{"event": "stage", "components": ["attn", "ssm"]},
              {"event": "train", "alphas": [[0.5, 0.5], [0.9, 0.1]]},
              {"event": "train", "alphas": [[0.3, 0.7], [0.6, 0.4]]}]  # the last step's are the run's alphas
    (runs / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    result = run("graph", searched, "--discretize", "argmax", "--alphas", runs)
    assert result.exit_code == 0 and "discretized: ssm | attn" in result.output, result.output
    (runs / "metrics.jsonl").write_text(json.dumps({"event": "train", "alphas": [[0.3, 0.7]]}) + "\n")
    wrong = run("graph", searched, "--discretize", "argmax", "--alphas", runs)
    assert wrong.exit_code == 2 and "not 2 rows of 2" in wrong.output


def path_of_fixed(tmp_path):
    return write_spec(tmp_path, SMALL, "fixed.yaml")


def test_internal_errors_are_reported_without_traceback(tmp_path, monkeypatch):
    import hybridc.spec.frontend as frontend

    def boom(*args, **kwargs):
        raise RuntimeError("kaput")

    monkeypatch.setattr(frontend, "resolve", boom)
    monkeypatch.delenv("HYBRIDC_DEBUG", raising=False)
    result = run("compile", write_spec(tmp_path, SMALL))
    assert result.exit_code == 70 and "internal error: RuntimeError: kaput" in result.output


def _subprocess(code: str):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)


def test_validate_and_fmt_do_not_import_torch(tmp_path):
    path = write_spec(tmp_path, SMALL)
    done = _subprocess(f"""
        import sys
        from click.testing import CliRunner
        from hybridc.cli import main
        for args in (["validate", {str(path)!r}], ["fmt", {str(path)!r}], ["fmt", "--check", {str(path)!r}],
                     ["families"]):
            result = CliRunner().invoke(main, args)
            assert result.exit_code in (0, 1), result.output
        assert "falcon_h1" in CliRunner().invoke(main, ["families"]).output
        heavy = [m for m in ("torch", "transformers", "networkx", "matplotlib") if m in sys.modules]
        assert not heavy, heavy
    """)
    assert done.returncode == 0, done.stderr


def test_real_cli_process_prints_no_traceback(tmp_path):
    bad = write_spec(tmp_path, BAD)
    done = subprocess.run([sys.executable, "-m", "hybridc", "validate", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count(": error: ") == 2


@pytest.mark.parametrize("args", [["validate", "nope.yaml"], ["compile", "nope.yaml"], ["fmt", "nope.yaml"]])
def test_missing_file(tmp_path, args):
    result = run(*args[:-1], tmp_path / args[-1])
    assert result.exit_code == 2 and "no such file" in result.output


# ---- options that cannot work are refused at once ----------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "false", "no", "off", "", " 0 "])
def test_hybridc_debug_set_to_off_keeps_tracebacks_off(tmp_path, monkeypatch, value):
    import hybridc.spec.frontend as frontend

    monkeypatch.setattr(frontend, "resolve", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("kaput")))
    result = CliRunner().invoke(main, ["compile", str(write_spec(tmp_path, SMALL))], env={"HYBRIDC_DEBUG": value})
    assert result.exit_code == 70 and "internal error: RuntimeError: kaput" in result.output
    shown = CliRunner().invoke(main, ["compile", str(write_spec(tmp_path, SMALL))], env={"HYBRIDC_DEBUG": "1"})
    assert isinstance(shown.exception, RuntimeError)  # (=1: the traceback is raised for the user to see)


def test_fp16_on_the_cpu_is_refused_before_anything_is_written(tmp_path):
    from tests.train.helpers import DATA, spec_text

    spec = write_spec(tmp_path, spec_text(f"- {{name: finetune, data: '{DATA}', steps: 1}}"))
    result = run("train", spec, "-o", tmp_path / "run", "--mixed-precision", "fp16")
    assert result.exit_code == 2 and "--mixed-precision fp16 needs a GPU (--device cuda)" in result.output
    assert "bf16" in result.output and not (tmp_path / "run").exists()
    assert "fp16 on a GPU only" in run("train", "--help").output


@pytest.mark.parametrize("args, said", [
    (["--data", "recall()", "--limit", "3"], "--limit belongs to --tasks, not to --data"),
    (["--data", "recall()", "--num-fewshot", "0", "--include-path", "."], "--include-path, --num-fewshot belong to --tasks"),
    (["--data", "recall()", "--trust-remote-code"], "--trust-remote-code belongs to --tasks"),
    (["--tasks", "hellaswag", "--split", "valid"], "--split belongs to --data, not to --tasks"),
    (["--tasks", "hellaswag", "--seed", "1"], "--seed belongs to --data"),
    (["--tasks", ""], "'' names no task"),
    (["--tasks", ",, ,"], "',, ,' names no task"),
])
def test_eval_refuses_options_of_the_other_mode_and_empty_task_lists(tmp_path, monkeypatch, args, said):
    monkeypatch.chdir(tmp_path)
    result = run("eval", tmp_path, *args)
    assert result.exit_code == 2 and said in result.output, result.output


def test_a_fifo_where_a_directory_belongs_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    spec = write_spec(tmp_path, SMALL)
    for args in (["eval", fifo, "--data", "recall()"], ["eval", tmp_path, "--tasks", "x", "--include-path", fifo],
                 ["generate", fifo, "hi"], ["discretize", fifo], ["validate", spec, "--root", fifo]):
        result = run(*args)
        assert result.exit_code == 2 and f"{fifo} is a FIFO, not a directory" in result.output, (args, result.output)


def test_eval_tasks_on_a_model_without_a_tokenizer_says_so(tmp_path):
    """The quickstart's kind of model (components from scratch, trained on token ids) has no tokenizer files."""
    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    lower(load_spec(write_spec(tmp_path, SMALL)), pretrained=False).save_pretrained(tmp_path / "model")
    result = run("eval", tmp_path / "model", "--tasks", "hellaswag")
    assert result.exit_code == 1 and "has no tokenizer, which lm-eval's tasks need" in result.output, result.output
    assert "Traceback" not in result.output
