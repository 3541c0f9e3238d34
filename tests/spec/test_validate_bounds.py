"""``validate`` is bounded whatever a spec asks for: sizes past hybridc's caps are refused before anything per
layer is built (a billion layers of a family whose config lists a type per layer), and a budget over a
family whose costs are measured on PyTorch's meta device is left to ``compile`` with a note, so validate
never imports torch or transformers. Checked in a fresh process whose address space is capped (a regression
fails there instead of filling the machine's memory); ``benchmarks/validate_bounds.py`` measures the time and
the memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.specs import write_spec

STAGES = 'train:\n  stages: [{name: search, data: "recall(vocab=16, length=16, examples=64)", steps: 1}, {name: discretize}]\n'


def huge(family: str) -> str:
    heads = "" if family == "rwkv" else "heads: 4, "
    return textwrap.dedent(f"""\
        hybridc: 1
        name: huge
        components:
          a:
            init: {{family: {family}, hidden_size: 32, layers: 1000000000, {heads}vocab_size: 64}}
        """) + STAGES


def budgeted(first: str) -> str:
    return textwrap.dedent(f"""\
        hybridc: 1
        name: budgeted
        components:
          a:
            init: {{family: {first}, hidden_size: 32, layers: 2, heads: 4, vocab_size: 64, max_length: 64}}
          b:
            init: {{family: mamba, hidden_size: 32, layers: 2, vocab_size: 64}}
        hybrid:
          budget: {{flops_per_token: 0.6x}}
        """) + STAGES


CASES = {  # name: (spec, exit status, fragment of the output)
    **{f"layers-{f}": (huge(f), 2, "layers is 1,000,000,000, more than hybridc builds") for f in
       ("qwen3", "jamba", "gemma2", "rwkv", "llama")},
    "budget-over-a-meta-measured-family": (budgeted("qwen3"), 0, "hybrid.budget is not checked here: the costs of "
                                           "'a' (qwen3) are measured on PyTorch's meta device"),
    "budget-over-formula-families": (budgeted("llama"), 0, "ok (2 components"),
    "width-of-10**12": (budgeted("llama").replace("hybrid:\n", "hybrid:\n  width: 1000000000000\n"), 2,
                        "width 1,000,000,000,000 is more than hybridc builds"),
}


def test_validate_is_bounded_and_torch_free_in_a_fresh_process(tmp_path):
    paths = {name: str(write_spec(tmp_path, text, f"{name}.yaml")) for name, (text, _, _) in CASES.items()}
    code = textwrap.dedent(f"""\
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # (a list of 1e9 entries needs 8 GB)
        from click.testing import CliRunner
        from hybridc.cli import main
        out = {{}}
        for name, path in {json.dumps(paths)}.items():
            result = CliRunner().invoke(main, ["validate", path])
            out[name] = [result.exit_code, result.output]
        out["heavy"] = [m for m in ("torch", "transformers") if m in sys.modules]
        print(json.dumps(out))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out.pop("heavy") == []
    for name, (_, status, fragment) in CASES.items():
        exit_code, output = out[name]
        assert exit_code == status and fragment in output, (name, output)
        assert "Traceback" not in output and "internal error" not in output, (name, output)


def test_the_budget_left_to_compile_is_checked_there(tmp_path):
    """The note's promise: compile refuses a budget over a meta-measured family that no selection fits."""
    from click.testing import CliRunner

    from hybridc.cli import main

    tight = budgeted("qwen3").replace("flops_per_token: 0.6x", "params: 10")
    path = write_spec(tmp_path, tight)
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0
    compiled = CliRunner().invoke(main, ["compile", str(path)])
    assert compiled.exit_code == 2 and "no discretization fits hybrid.budget.params" in compiled.output, compiled.output
