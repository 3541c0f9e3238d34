"""Model cards: Hugging Face metadata in YAML front matter, and what the model is."""

from __future__ import annotations

import textwrap

import yaml

from hybridc.models.card import model_card
from hybridc.models.hybrid import lower
from hybridc.spec import load_spec
from tests.hub import put_in_hub
from tests.specs import write_spec


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_the_card_names_library_tags_base_models_pipeline_and_datasets(tmp_path, tiny_pretrained):
    directory = tiny_pretrained("gpt-neo")
    put_in_hub("tests/card-neo", {p.name: p for p in directory.iterdir()})
    spec = write_spec(tmp_path, textwrap.dedent("""\
        hybridc: 1
        name: card
        components:
          zz: {from: "hf:tests/card-neo", blocks: split(1)}
          aa: {init: {family: mamba, hidden_size: 32, layers: 2, vocab_size: 96}, blocks: split(1)}
        hybrid: {mixture: "fixed([[0.4, 0.6]])"}
        train:
          stages:
            - {name: align, data: "text(hf:tests/corpus, block=16)", steps: 1}
        """))
    model = lower(load_spec(spec))
    card = model_card(model, {"loss": 1.25})
    meta = front_matter(card)
    # (its tokenizer is zz's, whose stand-in on the Hub has no tokenizer files: no pipeline tag, see below)
    assert meta == {"library_name": "hybridc", "tags": ["hybridc", "hybrid", "gpt-neo", "mamba"],
                    "base_model": "tests/card-neo", "datasets": ["tests/corpus"]}
    assert "alphas (block x component: zz, aa): 0.400, 0.600" in card and "loss 1.25" in card
    plain = front_matter(model_card(lower(load_spec(spec), selection=["zz"]), plain_family="gpt-neo"))
    assert plain["library_name"] == "transformers" and plain["tags"] == ["hybridc", "gpt-neo"]


def test_classifiers_have_their_pipeline_tag(tmp_path):
    from tests.specs import SMALL

    bare = SMALL.split("train:")[0]
    # without a tokenizer (a from-scratch component's) no pipeline can run the model: the card claims none
    assert "pipeline_tag" not in front_matter(model_card(lower(load_spec(write_spec(tmp_path, bare)))))
    front = bare.replace("name: small\n", "name: small\ntokenizer: bytes\n").replace("vocab_size: 64", "vocab_size: 260")
    assert front_matter(model_card(lower(load_spec(write_spec(tmp_path, front)))))["pipeline_tag"] == "text-generation"
    assert front_matter(model_card(lower(load_spec(write_spec(tmp_path, front + "task: classify(3)\n")))))[
        "pipeline_tag"] == "text-classification"
    assert front_matter(model_card(lower(load_spec(write_spec(tmp_path, front + "task: tag(4)\n")))))[
        "pipeline_tag"] == "token-classification"


def test_the_card_gives_the_models_inference_cost(tmp_path):
    """The saved model's own graph (continuous or discretized), as compile reports it."""
    from hybridc.graph.selection import discretize_graph
    from tests.specs import SMALL

    rs = load_spec(write_spec(tmp_path, SMALL.split("train:")[0]))
    model = lower(rs)
    g = model.graph
    card = model_card(model)
    assert (f"- inference cost at context {g.context_length}: {g.flops_per_token:,} forward FLOPs per token, "
            f"{g.decode_params:,} parameters read per decoded token, decode state {g.decode_state:,} numbers "
            "per sequence") in card
    small = lower(rs, selection=[rs.names[0]] * rs.num_blocks)
    assert f"{discretize_graph(rs, small.graph.selection).flops_per_token:,} forward FLOPs" in model_card(small)
    assert small.graph.flops_per_token < g.flops_per_token
