"""Hypothesis strategies: random valid specs as plain data (from-scratch components: no files needed)."""

from __future__ import annotations

import os

from hypothesis import strategies as st

# The fuzz tests draw the same cases every run (a CI result can be reproduced) unless HYBRIDC_FUZZ_FRESH=1 asks
# for new ones (to hunt for failures).
FUZZ_DERANDOMIZED = os.environ.get("HYBRIDC_FUZZ_FRESH") != "1"

ATTENTION = ("gpt-neo", "gpt2", "gpt-neox", "llama")
FAMILIES = ATTENTION + ("mamba", "mamba2")
PROJECTORS = ("linear", "linear-skip", "mlp", "mlp-skip", "none")
VOCAB = 64


@st.composite
def partitions(draw, layers: int, blocks: int) -> str:
    if draw(st.booleans()):
        return f"split({blocks})"
    if blocks == 1:
        return f"0..{layers}"
    cuts = sorted(draw(st.lists(st.integers(1, layers - 1), min_size=blocks - 1, max_size=blocks - 1, unique=True)))
    bounds = [0, *cuts, layers]
    return ", ".join(f"{a}..{b}" for a, b in zip(bounds, bounds[1:]))


@st.composite
def simplex_row(draw, m: int) -> list[float]:
    weights = draw(st.lists(st.integers(0, 4), min_size=m, max_size=m).filter(any))
    total = sum(weights)
    row = [w / total for w in weights]
    row[-1] = 1.0 - sum(row[:-1])
    return [round(a, 12) for a in row]


def stage_length(draw, most: int) -> dict:
    """A training stage's length: ``steps``, or sometimes ``epochs`` (whole or fractional)."""
    if draw(st.integers(0, 3)) == 0:
        return {"epochs": draw(st.sampled_from([0.25, 0.5, 1, 1.5, 2, 3]))}
    return {"steps": draw(st.integers(1, most))}


@st.composite
def specs(draw) -> dict:
    """A valid spec as plain data (from-scratch components, so no files are needed)."""
    m = draw(st.integers(1, 3))
    names = [f"c{i}" for i in range(m)]
    families = [draw(st.sampled_from(FAMILIES)) for _ in names]
    layers = [draw(st.integers(1, 4)) for _ in names]
    blocks = draw(st.integers(1, min(layers)))
    components = {}
    for name, family, n_layers in zip(names, families, layers):
        init = {"family": family, "hidden_size": draw(st.sampled_from([16, 24, 32])), "layers": n_layers,
                "vocab_size": VOCAB}
        if family in ATTENTION:
            init.update(heads=draw(st.sampled_from([2, 4])), max_length=64)
        components[name] = {"init": init, "blocks": draw(partitions(n_layers, blocks))}
    mode = draw(st.sampled_from(["search", "fixed", "one-hot"]))
    chosen = draw(st.integers(0, m - 1))
    hybrid: dict = {}
    if draw(st.booleans()):
        hybrid["projector"] = draw(st.sampled_from(PROJECTORS))
    else:
        hybrid["projector"] = {n: draw(st.sampled_from(PROJECTORS)) for n in names}
    if draw(st.booleans()):
        widest = max(c["init"]["hidden_size"] for c in components.values())
        hybrid["width"] = widest + draw(st.sampled_from([0, 8]))
    if mode == "search":
        hybrid["mixture"] = "search"
    elif mode == "fixed":
        rows = [draw(simplex_row(m)) for _ in range(blocks)]
        hybrid["mixture"] = f"fixed({rows})"
    else:
        row = [1.0 if j == chosen else 0.0 for j in range(m)]
        hybrid["mixture"] = f"fixed({[row] * blocks})"
    # one-hot mixtures take the chosen component's embedding, head and tokenizer (the invariant's setting)
    sources = ["mix", names[chosen]] if mode == "one-hot" else ["mix", *names]
    for key in ("embeddings", "head"):
        hybrid[key] = draw(st.sampled_from(sources))
    tokenizer = names[chosen] if mode == "one-hot" else draw(st.sampled_from(names))
    spec = {"hybridc": 1, "name": "generated", "tokenizer": tokenizer, "components": components, "hybrid": hybrid}
    tasks = ["causal-lm"] if mode == "one-hot" else ["causal-lm", "causal-lm", "classify(3)", "tag(4)"]
    task = draw(st.sampled_from(tasks))
    if task != "causal-lm" or draw(st.booleans()):
        spec["task"] = task
    if task == "causal-lm" and draw(st.booleans()):
        first = "search" if mode == "search" else "finetune"
        stages = [{"name": first, "data": "recall(vocab=16, length=16)", **stage_length(draw, 50),
                   "lr": draw(st.sampled_from([1e-4, 3e-4, 1e-3]))}]
        if draw(st.booleans()):
            stages += [{"name": "discretize"}, {"name": "retrain", **stage_length(draw, 20)}]
        spec["train"] = {"seed": draw(st.integers(0, 5)), "stages": stages}
    return spec
