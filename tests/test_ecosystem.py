"""A saved hybrid in the clients people run transformers models in, as they run them.

A small hybrid (Llama-style attention + Mamba, byte tokenizer, weights moved off their initial values) is
saved once. Then: a process that never imports hybridc loads it with ``trust_remote_code=True`` (and is
told to ``pip install hybridc`` when the package is missing), saves it again (so does a directory written by an
earlier release, whose modules re-export hybridc's classes) and loads what it saved, with the same logits and
the same ``auto_map`` modules; it reads hidden states and tuples, and decodes with prompt lookup and with a
discretized hybrid drafting for its continuous one, getting greedy decoding's tokens; it fine-tunes the model in
Trainer (checkpoints included), merges LoRA and trains with TRL, saves each and reloads it; it exports the hybrid
with ``torch.export`` and compiles a Mamba segment with ``torch.compile(fullgraph=True)``. lm-eval scores it on
local tasks from its CLI and from ``simple_evaluate``, with the hybrid's real context length; PEFT's LoRA trains
adapters on its components and projectors, which reload and merge exactly; transformers' Trainer and TRL's
SFTTrainer train it from its path with their defaults (bfloat16 autocast on the CPU, gradient checkpointing).
"""

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

from hybridc.models.hybrid import HybridModel, lower
from hybridc.spec import load_spec
from tests.specs import write_spec

SPEC = textwrap.dedent("""\
    hybridc: 1
    name: eco
    tokenizer: bytes
    components:
      attn:
        init: {family: llama, hidden_size: 32, layers: 2, heads: 4, vocab_size: 260, max_length: 48}
        blocks: split(2)
      ssm:
        init: {family: mamba, hidden_size: 24, layers: 2, vocab_size: 260}
        blocks: split(2)
    hybrid:
      projector: {attn: linear, ssm: mlp}
      mixture: fixed([[0.6, 0.4], [0.3, 0.7]])
    """)
TEXT = "the cat sat on the mat; a dog ran after it. "


def run_python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, outside the repository (so ``import hybridc`` is what is installed)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "HF_MODULES_CACHE": str(cwd / "modules"), **env})


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("eco")
    model = lower(load_spec(write_spec(directory, SPEC)), pretrained=False).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save_pretrained(directory / "model")
    return directory / "model"


def test_lm_eval_gets_the_trained_context_of_a_hybrid_without_positions(saved, tmp_path):
    """Recurrent components only (two Mambas): no position limit in the config, so lm-eval alone would read the
    bytes tokenizer's 1e9; hybridc eval --tasks gives it the longest sequence the spec trained on instead."""
    from lm_eval.models.utils import resolve_max_length
    from transformers import AutoConfig, AutoTokenizer

    from hybridc.inference.downstream import trained_context

    text = SPEC.replace("family: llama, hidden_size: 32, layers: 2, heads: 4, vocab_size: 260, max_length: 48",
                        "family: mamba, hidden_size: 32, layers: 2, vocab_size: 260") + textwrap.dedent("""\
        train:
          stages:
            - {name: finetune, data: "recall(vocab=16, length=24)", steps: 1}
            - {name: more, kind: finetune, data: "recall(vocab=16, length=40)", steps: 1}
        """)
    lower(load_spec(write_spec(tmp_path, text)), pretrained=False).save_pretrained(tmp_path / "ssm")
    config = AutoConfig.from_pretrained(tmp_path / "ssm", trust_remote_code=True)
    unbounded = resolve_max_length(config, AutoTokenizer.from_pretrained(tmp_path / "ssm"))
    assert unbounded == 1_000_000_000  # what lm-eval reads alone (README: pass max_length=)
    assert trained_context(tmp_path / "ssm") == 40
    assert trained_context(saved) is None  # the attention component's 48 positions are in its config


def ids_of(text: str = TEXT) -> torch.Tensor:
    return torch.tensor([list(text.encode())[:40]])


# ---- the config and the model surface ------------------------------------------------------------------------


def test_the_config_says_what_clients_read(saved):
    config = json.loads((saved / "config.json").read_text())
    assert config["vocab_size"] == 259 and config["hidden_size"] == 32  # the logits: the byte tokenizer's 259 and config["max_position_embeddings"] == 48
    assert config["eos_token_id"] == 258 and config["pad_token_id"] is not None
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_hybridc.HybridForCausalLM"
    model = HybridModel.from_pretrained(saved)
    assert model.get_input_embeddings() is model.embed  # two embeddings, mixed
    assert model.config.num_hidden_layers == 2


def test_the_backbone_and_the_effective_head_give_the_model_s_logits(saved):
    """What TRL's fused head computes from ``base_model`` and ``get_output_embeddings``: the model's logits."""
    model = HybridModel.from_pretrained(saved).eval()
    ids = ids_of()
    with torch.no_grad():
        h = model.base_model(ids).last_hidden_state
        head = model.get_output_embeddings()
        logits = h @ head.weight.t() + (head.bias if head.bias is not None else 0)
        assert (logits - model(ids).logits).abs().max().item() <= 1e-5


# ---- loading without hybridc imported -------------------------------------------------------------------------


def test_without_the_package_the_error_says_pip_install_hybridc(saved, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent("""\
        import sys
        class _NoHybridc:
            def find_spec(self, name, path=None, target=None):
                if name == "hybridc" or name.startswith("hybridc."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, _NoHybridc())
        """))
    done = run_python(f"""
        from transformers import AutoModelForCausalLM
        AutoModelForCausalLM.from_pretrained({str(saved)!r}, trust_remote_code=True)
        """, tmp_path, PYTHONPATH=str(blocker))
    assert done.returncode != 0
    assert "hybridc" in done.stderr and "pip install hybridc" in done.stderr


# The remote-code modules of directories saved before hybridc's own subclasses (they re-export hybridc's classes,
# which transformers then marked as remote code and could not copy): they must keep loading and saving.
LEGACY_REMOTE_CODE = {
    "configuration_hybridc.py": (
        '"""A hybrid saved by hybridc: its config class is hybridc\'s own (`pip install hybridc`)."""\n\n'
        "from hybridc.models.config import HybridConfig  # noqa: F401\n"),
    "modeling_hybridc.py": (
        '"""A hybrid saved by hybridc: its model classes are hybridc\'s own (`pip install hybridc`)."""\n\n'
        "from hybridc.models.hybrid import (  # noqa: F401\n"
        "    HybridForCausalLM,\n    HybridForSequenceClassification,\n    HybridForTokenClassification,\n"
        "    HybridModel,\n)\n"),
}


def legacy_copy(saved: Path, directory: Path) -> Path:
    """``saved`` as an earlier release wrote it (its modules re-export hybridc's classes)."""
    shutil.copytree(saved, directory)
    for name, text in LEGACY_REMOTE_CODE.items():
        (directory / name).write_text(text)
    return directory


GENERATING = SPEC.replace("max_length: 48", "max_length: 256").replace("name: eco", "name: drafting")


@pytest.fixture(scope="module")
def drafting(tmp_path_factory) -> Path:
    """A hybrid whose greedy tokens vary (weights far off their initial values: an untrained tiny model otherwise
    repeats one byte), saved with its discretized form (attention in block 0, Mamba in block 1) beside it."""
    from hybridc.models.export import discretize_model

    directory = tmp_path_factory.mktemp("drafting")
    model = lower(load_spec(write_spec(directory, GENERATING)), pretrained=False).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    model.save_pretrained(directory / "model")
    discretize_model(model, ["attn", "ssm"]).save_pretrained(directory / "draft")
    return directory


# Checked after a save: the same auto_map and the same modules as a directory hybridc wrote.
SAME_DIRECTORY = """
def same_directory(source, again_dir, written):
    import filecmp, json, os
    auto_map = json.load(open(os.path.join(source, "config.json")))["auto_map"]
    assert json.load(open(os.path.join(again_dir, "config.json")))["auto_map"] == auto_map
    assert filecmp.cmpfiles(written, again_dir, MODULES, shallow=False)[0] == MODULES
MODULES = ["configuration_hybridc.py", "modeling_hybridc.py"]
"""


def test_a_fresh_process_loads_decodes_saves_and_reloads_a_hybrid(drafting, tmp_path):
    """Without ``import hybridc``, the model loaded as remote code (the directory's own module, subclassing
    hybridc's class) gives hybridc's logits and runs in a pipeline; greedy decoding, prompt lookup and the
    discretized hybrid drafting give the same tokens (assisted generation crops the rejected candidates from the
    hybrid's cache, the Mamba states included); hidden states and tuples as transformers models return them;
    load -> save_pretrained -> load gives the same logits, the same auto_map and the same modules, and
    transformers' own copier of remote code (``custom_object_save``) copies the two modules and nothing else."""
    model_dir = str(drafting / "model")
    expected = HybridModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        torch.save(expected(ids_of()).logits, tmp_path / "expected.pt")
    done = run_python(f"""
        import filecmp, os, sys, torch
        assert "hybridc" not in sys.modules
        from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
        from transformers.dynamic_module_utils import custom_object_save
        {textwrap.indent(SAME_DIRECTORY, "        ").strip()}
        model = AutoModelForCausalLM.from_pretrained({model_dir!r}, trust_remote_code=True).eval()
        assert type(model)._auto_class == "AutoModelForCausalLM"  # remote code, as transformers sees it
        assert type(model).__module__.endswith(".modeling_hybridc")  # the directory's own: transformers copies it
        classes = [f"{{c.__module__}}.{{c.__name__}}" for c in type(model).__mro__]
        assert "hybridc.models.hybrid.HybridForCausalLM" in classes
        tokenizer = AutoTokenizer.from_pretrained({model_dir!r})
        with torch.no_grad():
            assert torch.equal(model(tokenizer({TEXT!r}, return_tensors="pt").input_ids[:, :40]).logits,
                               torch.load("expected.pt"))
        draft = AutoModelForCausalLM.from_pretrained({str(drafting / "draft")!r}, trust_remote_code=True).eval()
        ids = torch.tensor([list(b"the cat sat on the mat; the cat sat on the mat; the cat")])
        run = dict(max_new_tokens=16, do_sample=False, eos_token_id=None)
        greedy = model.generate(ids, **run)
        assert len(set(greedy[0, ids.shape[1]:].tolist())) > 5
        assert torch.equal(model.generate(ids, prompt_lookup_num_tokens=3, **run), greedy)
        assert torch.equal(model.generate(ids, assistant_model=draft, **run), greedy)
        text = pipeline("text-generation", model={model_dir!r}, trust_remote_code=True)("the", max_new_tokens=3)
        assert text[0]["generated_text"].startswith("the")
        with torch.no_grad():
            out = model(ids, output_hidden_states=True)
            assert len(out.hidden_states) == model.config.num_hidden_layers + 1 == 3
            assert all(h.shape == (1, ids.shape[1], model.config.hidden_size) for h in out.hidden_states)
            assert torch.equal(out.hidden_states[-1], model.base_model(ids).last_hidden_state)
            loss, logits = model(ids, labels=ids, return_dict=False)
            assert torch.equal(logits, out.logits) and loss.ndim == 0
        model.save_pretrained("again")
        again = AutoModelForCausalLM.from_pretrained("again", trust_remote_code=True).eval()
        with torch.no_grad():
            assert torch.equal(again(ids).logits, out.logits)
        same_directory({model_dir!r}, "again", {model_dir!r})
        os.makedirs("copied")
        custom_object_save(model, "copied")
        assert sorted(os.listdir("copied")) == MODULES
        assert filecmp.cmpfiles({model_dir!r}, "copied", MODULES, shallow=False)[0] == MODULES
        print("ok")
        """, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_a_fresh_process_saves_a_directory_of_an_earlier_release(saved, tmp_path):
    """Its modules re-export hybridc's classes, which transformers marks as remote code (the config's, at least):
    without ``import hybridc`` it loads, saves (with today's modules) and loads again with the same logits."""
    legacy = legacy_copy(saved, tmp_path / "legacy")
    done = run_python(f"""
        import sys, torch
        assert "hybridc" not in sys.modules
        from transformers import AutoModelForCausalLM
        {textwrap.indent(SAME_DIRECTORY, "        ").strip()}
        model = AutoModelForCausalLM.from_pretrained({str(legacy)!r}, trust_remote_code=True).eval()
        assert type(model.config)._auto_class == "AutoConfig"  # what made saving fail
        model.save_pretrained("again")
        again = AutoModelForCausalLM.from_pretrained("again", trust_remote_code=True).eval()
        ids = torch.tensor([list(b"the cat sat on the mat")])
        with torch.no_grad():
            assert torch.equal(model(ids).logits, again(ids).logits)
        same_directory({str(legacy)!r}, "again", {str(saved)!r})
        print("ok")
        """, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


@pytest.mark.slow  # CI's long part runs it (.ci/run)
def test_a_fresh_process_fine_tunes_merges_and_saves_and_each_reloads(saved, tmp_path):
    """Without ``import hybridc``: Trainer 2 steps -> ``save_model`` (and its checkpoints) -> reload; LoRA ->
    ``merge_and_unload`` -> ``save_pretrained`` -> reload; TRL's SFTTrainer -> ``save_model`` -> reload. Each
    reloaded model gives the trained model's logits."""
    done = run_python(f"""
        import sys, torch
        assert "hybridc" not in sys.modules
        from datasets import Dataset
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
        from trl import SFTConfig, SFTTrainer
        SAVED = {str(saved)!r}
        TEXT = {TEXT!r}
        ids = torch.tensor([list(TEXT.encode())[:32]])

        def same(model, directory):
            again = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True).eval()
            with torch.no_grad():
                assert torch.equal(model.eval()(ids).logits, again(ids).logits), directory
            return again

        model = AutoModelForCausalLM.from_pretrained(SAVED, trust_remote_code=True)
        rows = [{{"input_ids": list((TEXT * 2).encode())[:32]}} for _ in range(8)]
        data = Dataset.from_list([{{**r, "labels": r["input_ids"]}} for r in rows])
        args = TrainingArguments(output_dir="trainer", max_steps=2, per_device_train_batch_size=2, use_cpu=True,
                                 report_to=[], save_steps=1, learning_rate=1e-2)
        trainer = Trainer(model=model, args=args, train_dataset=data)
        trainer.train()
        trainer.save_model("trained")
        trained = same(model, "trained")
        same(model, "trainer/checkpoint-2")

        base = AutoModelForCausalLM.from_pretrained(SAVED, trust_remote_code=True)
        lora = get_peft_model(base, LoraConfig(r=4, target_modules=base.lora_target_modules(), init_lora_weights=False))
        merged = lora.merge_and_unload()
        merged.save_pretrained("merged")
        same(merged, "merged")

        sft = SFTConfig(output_dir="sft", max_steps=2, per_device_train_batch_size=2, max_length=32, use_cpu=True,
                        bf16=False, report_to=[], model_init_kwargs={{"trust_remote_code": True}})
        trl = SFTTrainer(model=SAVED, args=sft, train_dataset=Dataset.from_list([{{"text": TEXT * 2}}] * 8))
        trl.train()
        trl.save_model("sft-final")
        same(trl.model, "sft-final")
        print("ok")
        """, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


@pytest.mark.slow  # CI's long part runs it (.ci/run): torch.compile takes tens of seconds
def test_a_fresh_process_exports_the_hybrid_and_compiles_a_mamba_segment(drafting, tmp_path):
    """Without ``import hybridc``: ``torch.export`` of the continuous hybrid and of its discretized form, whose
    exported programs give eager's logits; ``torch.compile(fullgraph=True)`` of a Mamba segment (hybridc's
    fused CPU kernels run as custom operators: no graph break), whose values and gradients are eager's."""
    done = run_python(f"""
        import sys, torch
        assert "hybridc" not in sys.modules
        from transformers import AutoModelForCausalLM
        ids = torch.tensor([list(b"the cat sat on the mat")])
        for name in ("model", "draft"):
            model = AutoModelForCausalLM.from_pretrained({str(drafting)!r} + "/" + name, trust_remote_code=True).eval()
            with torch.no_grad():
                eager = model(ids).logits
            program = torch.export.export(model, (ids,))
            assert "hybridc.selective_scan" in str(program.graph)
            assert (program.module()(ids).logits - eager).abs().max().item() <= 1e-5
        segment = model.blocks[1].segments["ssm"]
        h = torch.randn(2, 24, 24, requires_grad=True)
        compiled = torch.compile(segment.forward, fullgraph=True)
        out = compiled(h)
        (grad,) = torch.autograd.grad(out.square().sum(), h)
        eager = segment(h)
        (eager_grad,) = torch.autograd.grad(eager.square().sum(), h)
        assert (out - eager).abs().max().item() <= 1e-5 and (grad - eager_grad).abs().max().item() <= 1e-4
        print("ok")
        """, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


# ---- lm-eval -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> Path:
    """A local multiple-choice task (loglikelihood) and a perplexity task (loglikelihood_rolling)."""
    directory = tmp_path_factory.mktemp("tasks")
    animals = ["cat", "dog", "fox", "owl", "bee", "elk"]
    rows = [{"question": f"the {a} sat on the", "choices": ["mat", "zq"], "answer": 0} for a in animals]
    (directory / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "text.jsonl").write_text("".join(json.dumps({"text": TEXT * (k + 2)}) + "\n" for k in range(3)))
    (directory / "eco_mc.yaml").write_text(textwrap.dedent(f"""\
        task: eco_mc
        dataset_path: json
        dataset_kwargs: {{data_files: {{test: {directory / "mc.jsonl"}}}}}
        test_split: test
        output_type: multiple_choice
        doc_to_text: "{{{{question}}}}"
        doc_to_choice: "{{{{choices}}}}"
        doc_to_target: "{{{{answer}}}}"
        metric_list: [{{metric: acc}}]
        """))
    (directory / "eco_ppl.yaml").write_text(textwrap.dedent(f"""\
        task: eco_ppl
        dataset_path: json
        dataset_kwargs: {{data_files: {{test: {directory / "text.jsonl"}}}}}
        test_split: test
        output_type: loglikelihood_rolling
        doc_to_text: ""
        doc_to_target: "{{{{text}}}}"
        metric_list: [{{metric: byte_perplexity}}, {{metric: bits_per_byte}}]
        """))
    return directory


@pytest.mark.slow  # CI's long part runs it (.ci/run): it keeps the default suite under 10 minutes
def test_lm_eval_cli_runs_end_to_end(saved, tasks, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={saved},trust_remote_code=True",
         "--tasks", "eco_mc,eco_ppl", "--include_path", str(tasks), "--device", "cpu", "--batch_size", "2",
         "--output_path", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_DATASETS_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = (tmp_path / "out").rglob("results_*.json")
    scores = json.loads(results.read_text())["results"]
    assert 0.0 <= scores["eco_mc"]["acc,none"] <= 1.0 and scores["eco_ppl"]["byte_perplexity,none"] > 1.0


def test_lm_eval_reads_the_real_context_and_scores_as_the_model_does(saved, tasks):
    """``simple_evaluate`` in process: lm-eval's context is the attention component's 48 positions, and its
    rolling loglikelihood of a text is the sum of the model's own next-token log-probabilities."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(saved), trust_remote_code=True, batch_size=2, device="cpu")
    assert lm.max_length == 48
    results = lm_eval.simple_evaluate(model=lm, tasks=["eco_mc"], task_manager=TaskManager(include_path=str(tasks)))
    assert "acc,none" in results["results"]["eco_mc"]
    text = TEXT[:30]  # shorter than the context: one window
    (score,) = lm.loglikelihood_rolling([_Request(text)])
    model = HybridModel.from_pretrained(saved).eval()
    ids = torch.tensor([[lm.prefix_token_id] + list(text.encode())])  # lm-eval's prefix: the tokenizer's BOS
    assert lm.prefix_token_id == 257
    with torch.no_grad():
        logprobs = model(ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None]).sum().item()
    assert abs(score - logprobs) <= 1e-4


class _Request:
    def __init__(self, text: str):
        self.args = (text,)


# ---- PEFT ----------------------------------------------------------------------------------------------------


def test_lora_on_components_and_projectors_trains_reloads_and_merges_exactly(saved, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = HybridModel.from_pretrained(saved)
    targets = base.lora_target_modules()
    assert any(t.endswith("mixer.dt_proj") for t in targets) and any(".projector_in." in t for t in targets)
    assert any(t.endswith("self_attn.q_proj") for t in targets)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False))
    model.train()
    ids = ids_of()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        model(ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        adapted = model(ids).logits
        plain = HybridModel.from_pretrained(saved).eval()(ids).logits
    assert (adapted - plain).abs().max().item() > 1e-3
    model.save_pretrained(tmp_path / "adapter")
    again = PeftModel.from_pretrained(HybridModel.from_pretrained(saved), tmp_path / "adapter").eval()
    merged = again.merge_and_unload().eval()
    with torch.no_grad():
        assert (again(ids).logits - adapted).abs().max().item() <= 1e-5
        assert (merged(ids).logits - adapted).abs().max().item() <= 1e-4


def test_lora_on_dt_proj_alone_changes_the_model(saved):
    """The fast Mamba scan reads dt_proj through the adapter: LoRA there is trained and merged, not ignored."""
    from peft import LoraConfig, get_peft_model

    base = HybridModel.from_pretrained(saved).eval()
    ids = ids_of()
    with torch.no_grad():
        before = base(ids).logits
    targets = [t for t in base.lora_target_modules() if t.endswith("dt_proj")]
    model = get_peft_model(base, LoraConfig(r=2, target_modules=targets, init_lora_weights=False)).eval()
    with torch.no_grad():
        adapted = model(ids).logits
        merged = model.merge_and_unload()(ids).logits
    assert (adapted - before).abs().max().item() > 1e-4
    assert (merged - adapted).abs().max().item() <= 1e-4


# ---- trainers ------------------------------------------------------------------------------------------------


def test_transformers_trainer_in_bf16_with_gradient_checkpointing(saved, tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    model = HybridModel.from_pretrained(saved)
    rows = [{"input_ids": list((TEXT * 2).encode())[:32]} for _ in range(8)]
    data = Dataset.from_list([{**r, "labels": r["input_ids"]} for r in rows])
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, bf16=True,
                             use_cpu=True, gradient_checkpointing=True, report_to=[], logging_steps=1)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


def test_trl_sft_trainer_from_a_path_with_its_defaults(saved, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list([{"text": TEXT * 2} for _ in range(8)])
    args = SFTConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, max_length=32,
                     use_cpu=True, report_to=[], logging_steps=1, model_init_kwargs={"trust_remote_code": True})
    assert args.bf16 and args.gradient_checkpointing  # TRL's defaults, kept
    trainer = SFTTrainer(model=str(saved), args=args, train_dataset=data)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)


@pytest.mark.slow  # CI's long part runs it (.ci/run): it keeps the default suite under 10 minutes
def test_hybridc_eval_tasks_records_lm_eval_results_in_the_run(tasks, tmp_path):
    """``hybridc eval RUN --tasks``: lm-eval on the run's final model; the results land in its metrics.jsonl
    and its model card, and an unknown task or a missing --data/--tasks is a clear error."""
    from click.testing import CliRunner

    from hybridc.cli import main
    from hybridc.train.run import TrainOptions, train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 40)
    text = SPEC + f"train:\n  seed: 2\n  stages:\n    - {{name: finetune, data: 'text({corpus}, block=32)', steps: 2}}\n"
    train(load_spec(write_spec(tmp_path, text)), TrainOptions(out_dir=tmp_path / "run", quiet=True), say=lambda m: None)
    runner = CliRunner()
    done = runner.invoke(main, ["eval", str(tmp_path / "run"), "--tasks", "eco_mc", "--include-path", str(tasks)])
    assert done.exit_code == 0, done.output
    assert "eco_mc" in done.output and "acc" in done.output
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (event,) = [e for e in events if e["event"] == "lm_eval"]
    assert event["context"] == 48 and 0 <= event["results"]["eco_mc"]["acc"] <= 1
    card = (tmp_path / "run" / "final" / "README.md").read_text()
    assert "## Downstream evaluation (lm-eval)" in card and card.index("Downstream") < card.index("## Spec")
    wrong = runner.invoke(main, ["eval", str(tmp_path / "run"), "--tasks", "no_such_task", "--include-path", str(tasks)])
    assert wrong.exit_code != 0 and "lm-eval knows no task 'no_such_task'" in wrong.output
    assert runner.invoke(main, ["eval", str(tmp_path / "run")]).exit_code == 2


def test_resize_token_embeddings_grows_every_embedding_and_head_and_reloads(saved, tmp_path):
    """Mixed or not, every component's embedding and head take the new size; kept rows keep their logits;
    the saved model reloads at the new size (the lock follows)."""
    model = HybridModel.from_pretrained(saved).eval()
    ids = ids_of()
    with torch.no_grad():
        before = model(ids).logits
    model.resize_token_embeddings(300)
    assert all(e.weight.shape[0] == 300 for e in model.embed.sources.values())
    assert all(h.weight.shape[0] == 300 for h in model.head.heads.values())
    assert model.config.vocab_size == 300
    with torch.no_grad():
        after = model(ids).logits
        assert after.shape[-1] == 300 and (after[..., :259] - before).abs().max().item() <= 1e-5
        grown = model(torch.tensor([[299, 298, 5]])).logits
    assert torch.isfinite(grown).all()
    model.save_pretrained(tmp_path / "grown")
    again = HybridModel.from_pretrained(tmp_path / "grown").eval()
    with torch.no_grad():
        assert torch.equal(again(ids).logits, after)
