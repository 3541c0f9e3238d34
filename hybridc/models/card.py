"""The README.md of a model directory: Hugging Face metadata (YAML front matter), what the model is,
how to load it, and the spec it was built from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from .remote_code import AUTO_CLASS_OF_TASK
from ..spec.emit import dump_yaml, spec_to_data

if TYPE_CHECKING:
    from .hybrid import HybridModel

PIPELINE_TAGS = {"causal-lm": "text-generation", "classify": "text-classification", "tag": "token-classification",
                 "match": "text-classification"}


def metadata(model: "HybridModel", plain_family: str | None = None) -> dict:
    """The card's front matter: library, tags, base models (``hf:`` components), pipeline, datasets."""
    rs = model.resolved_spec
    spec = rs.spec
    used = list(dict.fromkeys(model.graph.selection)) if model.graph.selection else list(rs.names)
    families = list(dict.fromkeys(rs.component(m).family for m in used))
    bases = [spec.component(m).source.ref for m in used if spec.component(m).source.kind == "hf"]
    datasets = []
    for stage in spec.train.stages:
        source = stage.data.arg("source") if stage.data is not None else None
        if isinstance(source, str) and source.startswith("hf:") and source[3:] not in datasets:
            datasets.append(source[3:])
    data: dict = {"library_name": "transformers" if plain_family else "hybridc",
                  "tags": ["hybridc", *(["hybrid"] if not plain_family else []), *families]}
    if bases:
        data["base_model"] = bases[0] if len(bases) == 1 else bases
    if model.get_tokenizer() is not None:  # a pipeline needs the tokenizer (a from-scratch component has none)
        data["pipeline_tag"] = PIPELINE_TAGS[spec.task.kind]
    if datasets:
        data["datasets"] = datasets
    return data


def model_card(model: "HybridModel", test: dict | None = None, plain_family: str | None = None) -> str:
    """The card of a saved hybrid (``plain_family``: of its plain export as that family's model)."""
    rs = model.resolved_spec
    g = model.graph
    front = yaml.safe_dump(metadata(model, plain_family), sort_keys=False, width=100)
    lines = ["---", front.rstrip(), "---", "", f"# {rs.spec.name}", ""]
    if plain_family:
        lines += [f"A {plain_family} model exported by hybridc from a discretized hybrid whose every block kept "
                  "the same component: a plain transformers model.", ""]
    else:
        lines += ["A pretrained hybrid built and trained by hybridc.", ""]
    lines += [f"- components: {', '.join(f'{c.name} ({c.family}, {c.num_layers} layers, d={c.hidden_size})' for c in rs.components)}",
              f"- blocks: {g.num_blocks}, shared width {g.width}, vocabulary {g.vocab_size}",
              f"- parameters: {g.total_params:,}",
              f"- inference cost at context {g.context_length}: {g.flops_per_token:,} forward FLOPs per token, "
              f"{g.decode_params:,} parameters read per decoded token, decode state "
              + (f"{g.decode_state:,} numbers per sequence" if g.decode_state is not None else "unknown")]
    if g.selection:
        lines.append(f"- discretized: {' | '.join(g.selection)}")
    else:
        alphas = model.alphas().tolist()
        lines.append(f"- alphas (block x component: {', '.join(rs.names)}): "
                     + "; ".join(", ".join(f"{a:.3f}" for a in row) for row in alphas))
    tokenizer = model.get_tokenizer()
    lines.append(f"- tokenizer: {rs.spec.tokenizer}" + ("" if tokenizer is not None else
                                                       f" (none saved: {model.tokenizer_problem})"))
    if test:
        lines.append("- test: " + ", ".join(f"{k} {v:.4g}" for k, v in test.items() if isinstance(v, float)))
    auto = AUTO_CLASS_OF_TASK[rs.spec.task.kind]
    load = ["```python", f"from transformers import AutoTokenizer, {auto}", ""]
    if plain_family:
        load.append(f"model = {auto}.from_pretrained(\"<this directory>\")")
    else:  # the directory's auto_map points at hybridc's classes (pip install hybridc)
        load.append(f"model = {auto}.from_pretrained(\"<this directory>\", trust_remote_code=True)")
    if tokenizer is not None:
        load.append("tokenizer = AutoTokenizer.from_pretrained(\"<this directory>\")")
    load.append("```")
    lines += ["", "## Use", "", *load, "", "## Spec", "", "```yaml", dump_yaml(spec_to_data(rs.spec)).rstrip(), "```", ""]
    return "\n".join(lines)
