"""Saved hybrids are the models that were saved: through disk, from a moved directory, with the
component sources deleted, for component names and orders drawn at random (alphabetical or not),
every family, 1-3 components, continuous (uneven fixed alphas, perturbed weights and projectors) and
discretized. The reference is the model in memory before saving; buffers are compared with what each
family's own constructor computes."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridc.components.adapters import build_model, load_adapter
from hybridc.components.registry import get_family
from hybridc.data.tokenizer import ByteTokenizer
from hybridc.spec.canonical import MODULE_ATTRIBUTES
from hybridc.models.hybrid import HybridModel, lower
from hybridc.spec import load_spec
from tests.conftest import SAMPLE_TEXT
from tests.hub import HUB_CACHE, put_in_hub
from hybridc.testing.strategies import FAMILIES, PROJECTORS, simplex_row
from tests.tiny_models import tiny_config

BYTES_VOCAB = 260  # >= the byte tokenizer's 259
# the spec's and YAML's words, and names torch keeps (refused by validate)
RESERVED = {"mix", "bytes", "all", "none", "null", "true", "false"} | MODULE_ATTRIBUTES

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=5).filter(lambda n: n not in RESERVED)


def _save_component(directory: Path, family: str, hidden: int, layers: int, vocab: int, seed: int) -> None:
    extra = {"window_size": 4} if family == "gpt-neo" else {}  # local attention that differs from global
    build_model(get_family(family), tiny_config(family, hidden_size=hidden, layers=layers, vocab_size=vocab, **extra),
                seed=seed).save_pretrained(directory)


def _copy_files(files: dict[str, Path], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        shutil.copyfile(path, directory / name)


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every weight (components, projectors, embeddings, heads) off its initial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def _logits(model: HybridModel, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


def _reload_elsewhere(model: HybridModel, work: Path, sources: list[Path]) -> tuple[HybridModel, Path]:
    """save_pretrained -> copy the directory elsewhere -> delete the original and the component
    sources -> from_pretrained."""
    model.save_pretrained(work / "saved")
    moved = work / "elsewhere" / "model"
    shutil.copytree(work / "saved", moved)
    shutil.rmtree(work / "saved")
    for source in sources:
        shutil.rmtree(source)
    return HybridModel.from_pretrained(moved).eval(), moved


@st.composite
def hybrids(draw) -> dict:
    m = draw(st.integers(1, 3))
    component_names = draw(st.lists(names, min_size=m, max_size=m, unique=True))
    layers = [draw(st.integers(2, 3)) for _ in range(m)]
    blocks = draw(st.integers(1, min(layers)))
    tokenizer = draw(st.sampled_from(["component", "directory", "hub", "bytes"]))
    return {
        "names": component_names,
        "families": [draw(st.sampled_from(FAMILIES)) for _ in range(m)],
        "hidden": [draw(st.sampled_from([32, 48])) for _ in range(m)],
        "layers": layers,
        "blocks": blocks,
        "seeds": [draw(st.integers(0, 10_000)) for _ in range(m)],
        "projectors": [draw(st.sampled_from(PROJECTORS)) for _ in range(m)],
        "alphas": [draw(simplex_row(m)) for _ in range(blocks)],
        "embeddings": draw(st.sampled_from(["mix", *component_names])),
        "head": draw(st.sampled_from(["mix", *component_names])),
        "tokenizer": tokenizer,
        "selection": draw(st.none() | st.lists(st.sampled_from(component_names), min_size=blocks, max_size=blocks)),
        "perturb": draw(st.integers(0, 2**31 - 1)),
    }


def _spec_text(h: dict, directories: dict[str, Path], tokenizer: str) -> str:
    components = "".join(f"  {n}:\n    from: {directories[n]}\n    blocks: split({h['blocks']})\n" for n in h["names"])
    projectors = ", ".join(f"{n}: {k}" for n, k in zip(h["names"], h["projectors"]))
    return textwrap.dedent(f"""\
        hybridc: 1
        name: roundtrip
        tokenizer: {tokenizer}
        components:
        """) + components + textwrap.dedent(f"""\
        hybrid:
          projector: {{{projectors}}}
          embeddings: {h['embeddings']}
          head: {h['head']}
          mixture: fixed({h['alphas']})
        train:
          seed: {h['perturb'] % 97}
        """)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(h=hybrids())
def test_a_saved_hybrid_reloads_as_the_model_that_was_saved(tmp_path_factory, bpe_tokenizer_files, h):
    work = tmp_path_factory.mktemp("roundtrip")
    vocab = BYTES_VOCAB if h["tokenizer"] == "bytes" else 96
    directories = {n: work / "sources" / n for n in h["names"]}
    for n, family, hidden, layers, seed in zip(h["names"], h["families"], h["hidden"], h["layers"], h["seeds"]):
        _save_component(directories[n], family, hidden, layers, vocab, seed)
    sources = [work / "sources"]
    tokenizer = {"component": h["names"][0], "bytes": "bytes", "directory": str(work / "sources" / "tok")}.get(
        h["tokenizer"], f"hf:tests/tok-{work.name}")
    if h["tokenizer"] == "component":
        _copy_files(bpe_tokenizer_files, directories[h["names"][0]])
    elif h["tokenizer"] == "directory":
        _copy_files(bpe_tokenizer_files, work / "sources" / "tok")
    elif h["tokenizer"] == "hub":
        # a Hub repository has a config.json beside its tokenizer files (transformers looks for it)
        put_in_hub(f"tests/tok-{work.name}", {**bpe_tokenizer_files, "config.json": directories[h["names"][0]] / "config.json"})
        sources.append(HUB_CACHE / f"models--tests--tok-{work.name}")
    spec = work / "spec.yaml"
    spec.write_text(_spec_text(h, directories, tokenizer))
    model = lower(load_spec(spec), selection=h["selection"]).eval()
    _perturb(model, h["perturb"])
    ids = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(h["perturb"]))
    before = _logits(model, ids)
    assert model.get_tokenizer() is not None, model.tokenizer_problem
    expected_ids = model.get_tokenizer().encode(SAMPLE_TEXT)

    again, moved = _reload_elsewhere(model, work, sources)

    assert list(again.graph.names) == h["names"]
    after = _logits(again, ids)
    assert (after - before).abs().max().item() <= 1e-6
    assert torch.equal(after, _logits(again, ids))  # no uninitialised memory read
    assert again.alphas().tolist() == model.alphas().tolist()
    assert again.get_tokenizer().encode(SAMPLE_TEXT) == expected_ids
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(moved)
    assert auto(SAMPLE_TEXT, add_special_tokens=False)["input_ids"] == expected_ids


def _two_component_spec(directory: Path, first: tuple[str, str], second: tuple[str, str], vocab: int = 96,
                        tokenizer: str | None = None) -> Path:
    """A spec of two saved tiny components ``(name, family)`` in that order, alphas uneven."""
    for name, family in (first, second):
        _save_component(directory / name, family, 32, 3, vocab, seed=7)
    spec = directory / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        hybridc: 1
        name: pair
        tokenizer: {tokenizer or first[0]}
        components:
          {first[0]}: {{from: {directory / first[0]}, blocks: split(2)}}
          {second[0]}: {{from: {directory / second[0]}, blocks: split(2)}}
        hybrid: {{mixture: "fixed([[0.2, 0.8], [0.9, 0.1]])"}}
        """))
    return spec


PARTNER = {"gpt-neo": "mamba", "gpt2": "llama", "gpt-neox": "mamba2", "llama": "gpt-neo", "mamba": "gpt-neox",
           "mamba2": "gpt2"}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_buffer_a_family_reads_is_restored(tmp_path, family):
    """After from_pretrained, each component's buffers (GPT-Neo's causal and local masks, rotary inverse
    frequencies, ...) equal what the family's own constructor computes, and the logits are the saved model's."""
    spec = _two_component_spec(tmp_path, ("zeta", family), ("alpha", PARTNER[family]))  # names sort the other way
    model = lower(load_spec(spec)).eval()
    ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(0))
    before = _logits(model, ids)
    again, _ = _reload_elsewhere(model, tmp_path / "work", [tmp_path / "zeta", tmp_path / "alpha"])
    saved_buffers = dict(model.named_buffers())
    loaded_buffers = dict(again.named_buffers())
    assert saved_buffers.keys() == loaded_buffers.keys()
    for key, value in saved_buffers.items():
        assert torch.equal(loaded_buffers[key], value), key
    # independently of our model: the family's own model built from the config has the same buffers
    rc = again.resolved_spec.component("zeta")
    own = load_adapter(get_family(family), build_model(get_family(family), rc.config, seed=0))
    own_buffers = {}
    for i, layer in enumerate(own.layers()):
        own_buffers.update({f"{i}.{k}": v for k, v in layer.named_buffers()})
    ours = {}
    for block in again.blocks:
        segment = block.segments["zeta"]
        for i, layer in zip(range(segment.start, segment.stop), segment.layers):
            ours.update({f"{i}.{k}": v for k, v in layer.named_buffers()})
    assert ours.keys() == own_buffers.keys()
    assert all(torch.equal(ours[k], own_buffers[k]) for k in ours)
    assert torch.equal(_logits(again, ids), before)


def test_the_readme_order_neo_then_mamba_survives_a_round_trip(tmp_path):
    """The issue's case: neo, mamba (not alphabetical), uneven alphas; with the byte tokenizer."""
    spec = _two_component_spec(tmp_path, ("neo", "gpt-neo"), ("mamba", "mamba"), BYTES_VOCAB, tokenizer="bytes")
    model = lower(load_spec(spec)).eval()
    ids = torch.tensor([ByteTokenizer().encode("hello, hybrid world")])
    before = _logits(model, ids)
    again, moved = _reload_elsewhere(model, tmp_path / "work", [tmp_path / "neo", tmp_path / "mamba"])
    assert again.graph.names == ("neo", "mamba")
    assert torch.equal(_logits(again, ids), before)
    lock = json.loads((moved / "config.json").read_text())["lock"]
    assert [c["name"] for c in lock["spec"]["components"]] == ["neo", "mamba"]
    assert [c["name"] for c in lock["resolved"]["components"]] == ["neo", "mamba"]
    generation = json.loads((moved / "generation_config.json").read_text())
    assert (generation["pad_token_id"], generation["bos_token_id"], generation["eos_token_id"]) == (256, 257, 258)


def test_an_older_config_with_sorted_components_is_refused(tmp_path):
    """config.json written by the previous release (lock version 1: components as a sorted mapping) does
    not say the spec's order: loading it is refused with a clear message, never guessed."""
    from hybridc.errors import CompileError

    spec = _two_component_spec(tmp_path, ("neo", "gpt-neo"), ("mamba", "mamba"))
    lower(load_spec(spec)).save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    lock = config["lock"]
    lock["hybridc_lock"] = 1
    lock["spec"]["components"] = {c.pop("name"): c for c in lock["spec"]["components"]}
    lock["resolved"]["components"] = {c.pop("name"): c for c in lock["resolved"]["components"]}
    (tmp_path / "saved" / "config.json").write_text(json.dumps(config, sort_keys=True))
    with pytest.raises(CompileError, match="alphabetical order"):
        HybridModel.from_pretrained(tmp_path / "saved")
