"""Semantic checks against resolved configs: every problem located, all reported at once."""

from __future__ import annotations

import json

import pytest

from hybridc.errors import SpecError
from hybridc.spec import load_spec
from tests.specs import SMALL, write_spec


def problems(tmp_path, text):
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(tmp_path, text))
    return info.value.diagnostics


def located(tmp_path, text, fragment):
    found = [d for d in problems(tmp_path, text) if fragment in d.message]
    assert found, [d.render() for d in problems(tmp_path, text)]
    return found[0]


def at(d):
    return d.location.line, d.location.col


def test_small_spec_is_valid(tmp_path):
    rs = load_spec(write_spec(tmp_path, SMALL))
    assert rs.width == 32 and rs.vocab_size == 64 and rs.num_blocks == 2
    assert [str(r) for r in rs.component("ssm").ranges] == ["0..1", "1..3"]


@pytest.mark.parametrize(
    "old, new, fragment, position",
    [
        ("blocks: 0..1, 1..3", "blocks: 0..1, 1..4", "outside 'ssm'", (9, 19)),
        ("blocks: 0..1, 1..3", "blocks: 0..1, 2..3", "layers 1..2 of 'ssm' are in no block", (9, 19)),
        ("blocks: 0..1, 1..3", "blocks: 0..2, 1..3", "overlaps", (9, 19)),
        ("blocks: 0..1, 1..3", "blocks: 0..1, 1..2", "layers 2..3 of 'ssm' are in no block", (9, 19)),
        ("blocks: 0..1, 1..3", "blocks: 0..1, 1..1", "empty layer range", (9, 19)),
        ("blocks: 0..1, 1..3", "blocks: 0..3", "'ssm' has 1 block but 'attn' has 2", (9, 13)),
        ("blocks: 0..1, 1..3", "blocks: split(4)", "split(4) of 'ssm' makes empty blocks", (9, 13)),
        ("blocks: 0..1, 1..3", "blocks: 0:1, 1:3", "invalid blocks", (9, 14)),
        ("family: mamba", "family: mambo", "unknown family 'mambo'", (8, 20)),
        ("vocab_size: 64}\n    blocks: 0..1", "vocab_size: 64, d_state: 4}\n    blocks: 0..1", "unknown key 'd_state'",
         (8, 71)),
        ("vocab_size: 64}\n    blocks: 0..1", "vocab_size: 32}\n    blocks: 0..1", "fewer than the tokenizer's 64",
         (8, 11)),
        ("[0.25, 0.75]]", "[0.25, 0.7]]", "alpha row 1 sums to 0.95", (12, 31)),
        ("[0.25, 0.75]]", "[0.25, 0.75, 0.0]]", "alpha row 1 has 3 entries", (12, 31)),
        ("fixed([[0.5, 0.5], [0.25, 0.75]])", "fixed([[0.5, 0.5]])", "1 row of alphas but the hybrid has 2", (12, 12)),
        ("fixed([[0.5, 0.5], [0.25, 0.75]])", "fixed([[1.5, -0.5], [0.25, 0.75]])", "outside [0, 1]", (12, 20)),
        ("{attn: linear, ssm: mlp}", "{attn: linear, sm: mlp}", "projector for unknown component 'sm'", (11, 29)),
        ("hybrid:\n", "hybrid:\n  width: 16\n", "width 16 is narrower than 'attn' (32)", (11, 10)),
        ("hybrid:\n", "hybrid:\n  embeddings: ssn\n", "must be 'mix' or a component name", (11, 15)),
        ("recall(vocab=16, length=16)", "recall(vocab=128, length=16)", "the data uses 128 tokens", (15, 27)),
        ("recall(vocab=16, length=16)", "recall(vocab=16, length=100)", "longer than 'attn' allows (64)", (15, 27)),
        ("recall(vocab=16, length=16)", "text(missing.txt)", "no such data file 'missing.txt'", (15, 27)),
        ("recall(vocab=16, length=16)", "recal()", "unknown data source 'recal'", (15, 28)),
        ("recall(vocab=16, length=16)", "recall(vocab=16, lenght=16)", "has no argument 'lenght'", (15, 45)),
        ("name: align", "name: warmup", "stage 'warmup' has no kind", (15, 14)),
        ("steps: 5}", "steps: 5, search: darts}", "only search stages take 'search'", (15, 68)),
    ],
)
def test_problem_is_located(tmp_path, old, new, fragment, position):
    assert old in SMALL
    d = located(tmp_path, SMALL.replace(old, new, 1), fragment)
    assert at(d) == position, d.render()


def test_all_problems_are_reported_at_once(tmp_path):
    text = SMALL.replace("blocks: 0..1, 1..3", "blocks: 0..1, 1..4").replace("[0.25, 0.75]]", "[0.25, 0.7]]")
    text = text.replace("family: mamba", "family: mamba, ssm_cfg: 1")
    messages = [d.message for d in problems(tmp_path, text)]
    assert len(messages) >= 2
    assert any("sums to" in m for m in messages)
    assert any("unknown key 'ssm_cfg'" in m for m in messages)


def test_search_stage_needs_searched_mixture(tmp_path):
    text = SMALL.replace('- {name: align, data: "recall(vocab=16, length=16)", steps: 5}',
                         '- {name: search, data: "recall(vocab=16, length=16)", steps: 5}')
    assert at(located(tmp_path, text, "searches, but hybrid.mixture is")) == (15, 14)


def test_training_alphas_of_a_fixed_mixture_is_an_error(tmp_path):
    text = SMALL.replace("steps: 5}", "steps: 5, train: [alphas]}")
    assert "trains alphas, but the mixture is not searched" in located(tmp_path, text, "trains alphas").message


def test_missing_local_dir_and_bad_config(tmp_path):
    text = SMALL.replace("init: {family: mamba, hidden_size: 24, layers: 3, vocab_size: 64}", "from: ./models/ssm")
    d = located(tmp_path, text, "no such directory './models/ssm'")
    assert at(d) == (8, 11) and str(tmp_path) in d.hint
    (tmp_path / "models" / "ssm").mkdir(parents=True)
    assert "has no config.json" in located(tmp_path, text, "config.json").message
    (tmp_path / "models" / "ssm" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    d = located(tmp_path, text, "model type")
    assert "unknown model type 't5'" in d.message and "architectures" in d.hint


def test_unknown_hub_id_is_located(tmp_path):
    text = SMALL.replace("init: {family: mamba, hidden_size: 24, layers: 3, vocab_size: 64}", "from: hf:nobody/nothing")
    d = located(tmp_path, text, "cannot fetch config.json of hf:nobody/nothing")
    assert at(d) == (8, 11) and "local directory" in d.hint


def test_programmed_alphas(tmp_path):
    text = SMALL.replace("fixed([[0.5, 0.5], [0.25, 0.75]])", "programmed(alphas.json)")
    assert "no such alphas file 'alphas.json'" in located(tmp_path, text, "alphas file").message
    (tmp_path / "alphas.json").write_text(json.dumps({"alphas": [[0.5, 0.5], [0.1, 0.8]], "components": ["attn", "ssm"]}))
    assert "alpha row 1 sums to 0.9" in located(tmp_path, text, "sums to").message
    (tmp_path / "alphas.json").write_text(json.dumps({"alphas": [[0.5, 0.5], [0.2, 0.8]], "components": ["attn", "ssm"]}))
    rs = load_spec(tmp_path / "spec.yaml")
    assert rs.alphas == ((0.5, 0.5), (0.2, 0.8))


def test_tokenizer_must_exist(tmp_path):
    text = SMALL.replace("name: small\n", "name: small\ntokenizer: atn\n")
    d = located(tmp_path, text, "tokenizer 'atn'")
    assert at(d) == (3, 12) and "did you mean 'attn'?" == d.hint


def test_trust_remote_code_warns(tmp_path):
    text = SMALL.replace("blocks: split(2)", "blocks: split(2)\n    trust_remote_code: true")
    rs = load_spec(write_spec(tmp_path, text))
    (w,) = rs.warnings
    assert w.severity == "warning" and "trust_remote_code" in w.message


# ---- inputs that used to hang validate or exhaust memory (each run in its own process, with a timeout) ----
def _validate_quickly(path, *extra, seconds: float = 60):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HYBRIDC_DEBUG"}
    return subprocess.run([sys.executable, "-m", "hybridc", "validate", str(path), *extra], capture_output=True,
                          text=True, timeout=seconds, env=env)


HOSTILE_BASE = """\
hybridc: 1
name: hostile
tokenizer: TOKENIZER
components:
  attn:
    init: {family: gpt-neox, hidden_size: 32, layers: 2, heads: HEADS, vocab_size: 300, max_length: 64}
"""


def test_a_huge_head_count_is_an_error_not_a_loop(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(HOSTILE_BASE.replace("TOKENIZER", "attn").replace("HEADS", "1000000000000000000"))
    done = _validate_quickly(path)
    assert done.returncode == 2 and "spec.yaml:6:" in done.stderr and "Traceback" not in done.stderr


def test_absurd_sizes_are_refused_at_validate(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(HOSTILE_BASE.replace("TOKENIZER", "attn").replace("HEADS", "4").replace("layers: 2", "layers: 1000000000"))
    done = _validate_quickly(path)
    assert done.returncode == 2 and "more than hybridc builds (at most 10,000)" in done.stderr, done.stderr


@pytest.mark.parametrize("kind", ["fifo-path", "fifo-file", "dev-zero"])
def test_tokenizer_files_that_never_end_do_not_hang(tmp_path, kind):
    import os

    tok = tmp_path / "tok"
    if kind == "fifo-path":
        os.mkfifo(tok)
    else:
        tok.mkdir()
        if kind == "fifo-file":
            os.mkfifo(tok / "tokenizer.json")
        else:
            (tok / "tokenizer.json").symlink_to("/dev/zero")
    path = tmp_path / "spec.yaml"
    path.write_text(HOSTILE_BASE.replace("TOKENIZER", str(tok)).replace("HEADS", "4"))
    for extra in ((), ("--root", str(tmp_path))):
        done = _validate_quickly(path, *extra, seconds=30)
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr and "internal error" not in done.stderr
    if kind == "fifo-path":
        assert "neither a directory nor a regular file" in done.stderr


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.txt"])
def test_an_empty_data_file_is_an_error_at_validate(tmp_path, name):
    (tmp_path / name).write_text("")
    path = tmp_path / "spec.yaml"
    path.write_text(HOSTILE_BASE.replace("TOKENIZER", "bytes").replace("HEADS", "4")
                    + f"train:\n  stages:\n    - {{name: align, data: \"text({name}, block=16)\", steps: 1}}\n")
    done = _validate_quickly(path)
    assert done.returncode == 2 and "spec.yaml:9:27:" in done.stderr and "is empty" in done.stderr, done.stderr


def test_every_printed_line_is_located_even_when_a_message_holds_line_breaks():
    from hybridc.errors import Diagnostic, Location

    rendered = Diagnostic(Location("s.yaml", 3, 4), "cannot read x:\n  line two\nthree", "fix\nit").render()
    assert "\n" not in rendered and rendered == "s.yaml:3:4: error: cannot read x: line two three (hint: fix it)"


def test_validate_accepts_the_labels_the_classify_loader_accepts(tmp_path):
    """Whole floats (1.0) are class numbers for the loader; validate's look at the first records agrees."""
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": 1.0}\n{"text": "b", "label": 0}\n')
    (tmp_path / "d.csv").write_text("text,label\na,1\nb,0.0\n")
    for name in ("d.jsonl", "d.csv"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(HOSTILE_BASE.replace("TOKENIZER", "bytes").replace("HEADS", "4") + "task: classify(2)\n"
                        + f"train:\n  stages:\n    - {{name: finetune, data: \"classify({name}, block=16)\", steps: 1}}\n")
        done = _validate_quickly(path)
        assert done.returncode == 0, done.stderr
