"""Inference throughput: prefill and decode tokens/s of the components alone, the continuous hybrid and the
discretized hybrid, measured side by side in one process.

    python benchmarks/inference.py [--hidden 256] [--layers 4] [--vocab 256,32000] [--prompt 128] [--new 64]
                                   [--batch 1] [--repeat 5] [--prefills 5] [--threads 2]
                                   [--write benchmarks/README.md]

Models: a Llama-style attention model and a Mamba model (each ``--layers`` layers, width ``--hidden``,
vocabulary ``--vocab``); the continuous hybrid mixes them over two blocks with fixed alphas (0.5, 0.5) so both run
in every block; the discretized hybrid keeps attention in block 0 and Mamba in block 1. References:
(a) each component alone, run as the hybrid runs it: its embedding, all its layers as one segment and its
head, chained by hand with its cache (the same kernels: a Mamba prefill runs our chunked scan and fills
the cache from its last state; decode steps are transformers' recurrent update), and, for context, as its
own transformers model (``model(ids, past_key_values=cache)``, whose Mamba prefill is a token loop);
(b) for the discretized hybrid, the same selected parts (attention embedding, its first segment, the switch
projectors, the Mamba second segment, the attention head) chained by hand with their caches. Prefill:
``--prefills`` forwards over the prompt per run, each with a fresh cache; decode: greedy next-token steps
with the cache, ``--new`` of them. The continuous hybrid is compared with the ideal 1 / (1/attention +
1/Mamba) of (a)'s like-for-like runs.
All models decode in lockstep (one step of each, in turn), and ratios are medians over these paired
measurements: the machine is shared, and its speed drifts.
"""

from __future__ import annotations

import argparse
import os
import sys
import platform
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from report import write_section

import torch



def build(args, vocab: int, tmp: Path):
    from hybridc.models.export import discretize_model
    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    spec = textwrap.dedent(f"""\
        hybridc: 1
        name: inference
        components:
          attn: {{init: {{family: llama, hidden_size: {args.hidden}, layers: {args.layers}, heads: 8, vocab_size: {vocab},
                  max_length: 1024}}, blocks: split(2)}}
          ssm: {{init: {{family: mamba, hidden_size: {args.hidden}, layers: {args.layers}, vocab_size: {vocab}}}, blocks: split(2)}}
        hybrid: {{projector: linear, embeddings: attn, head: attn, mixture: "fixed([[0.5, 0.5], [0.5, 0.5]])"}}
        """)
    (tmp / "s.yaml").write_text(spec)
    rs = load_spec(tmp / "s.yaml")
    hybrid = lower(rs).eval()
    discrete = discretize_model(hybrid, ["attn", "ssm"]).eval()
    plain = {name: hybrid._adapters[name].model.eval() for name in ("attn", "ssm")}
    adapters = {name: discrete._adapters[name] for name in ("attn", "ssm")}

    def alone(name):
        adapter = adapters[name]
        embedding, segment, head = adapter.embedding(), adapter.segment(0, args.layers), adapter.lm_head()

        def forward(ids, cache):
            h = embedding(ids)
            h = segment(h, context=adapter.prepare(h, None, None, cache))
            return head(h)

        return adapter.new_cache, forward

    def selected(ids, cache):
        d = discrete
        h = d.embed.sources["attn"](ids)
        contexts = {m: adapters[m].prepare(h, None, None, cache.component(m)) for m in ("attn", "ssm")}
        h = d.blocks[0].segments["attn"](h, context=contexts["attn"])
        h = d.blocks[1].projector_in["ssm"](h)
        h = d.blocks[1].segments["ssm"](h, context=contexts["ssm"])
        h = d.blocks[1].projector_out["ssm"](h)
        cache.seen += ids.shape[1]
        return d.head.heads["attn"](h)

    from transformers import DynamicCache

    def component(name):
        model = plain[name]

        def new():
            return DynamicCache(config=model.config)

        def forward(ids, cache):
            return model(ids, past_key_values=cache, use_cache=True).logits if name == "attn" else \
                model(ids, cache_params=cache, use_cache=True).logits

        return new, forward

    def hybrid_runner(model):
        return model.new_cache, lambda ids, cache: model(ids, past_key_values=cache, use_cache=True).logits

    return {
        "attn": alone("attn"), "ssm": alone("ssm"), "attn-hf": component("attn"), "ssm-hf": component("ssm"),
        "hybrid": hybrid_runner(hybrid), "discretized": hybrid_runner(discrete),
        "selected": (discrete.new_cache, selected),
    }


@torch.no_grad()
def measure(models, args, ids):
    """One run: every model prefills the prompt, then all decode ``--new`` tokens in lockstep, one step of
    each model after the other, so that drifts in the machine's speed hit every model alike.
    Prefills also run in lockstep, ``--prefills`` rounds of one each.
    Returns {model: ([prefill seconds], [decode step seconds])}."""
    caches, tokens, out = {}, {}, {name: ([], []) for name in models}
    for _ in range(args.prefills):
        for name, (new_cache, forward) in models.items():
            caches[name] = new_cache()
            start = time.perf_counter()
            logits = forward(ids, caches[name])
            out[name][0].append(time.perf_counter() - start)
            tokens[name] = logits[:, -1:].argmax(-1)
    for _ in range(args.new):
        for name, (_, forward) in models.items():
            start = time.perf_counter()
            logits = forward(tokens[name], caches[name])
            tokens[name] = logits[:, -1:].argmax(-1)
            out[name][1].append(time.perf_counter() - start)
    return out


def report(args, vocab: int) -> str:
    """Build the models with vocabulary ``vocab``, measure them, and return the markdown table and ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        models = build(args, vocab, Path(tmp))
        ids = torch.randint(0, vocab, (args.batch, args.prompt), generator=torch.Generator().manual_seed(0))
        measure(models, args, ids)  # warm-up
        runs = [measure(models, args, ids) for _ in range(args.repeat)]
    # throughputs: medians over every prefill and every decode step (robust to bursts of a shared machine)
    prefill = {k: args.batch * args.prompt / statistics.median(t for run in runs for t in run[k][0]) for k in models}
    decode = {k: args.batch / statistics.median(t for run in runs for t in run[k][1]) for k in models}

    # ratios: per lockstep round, then the median (pairs measured side by side, a fraction of a second apart)
    def ratio(times: Callable[[dict], list[tuple[float, float]]]) -> float:
        return statistics.median(a / b for run in runs for a, b in times(run))

    def vs_ideal(kind: int, attn: str, ssm: str) -> float:
        return ratio(lambda run: [(a + b, h) for a, b, h in zip(run[attn][kind], run[ssm][kind], run["hybrid"][kind])])

    prefill_vs_ideal, decode_vs_ideal = vs_ideal(0, "attn", "ssm"), vs_ideal(1, "attn", "ssm")
    prefill_vs_hf = vs_ideal(0, "attn-hf", "ssm-hf")
    prefill_vs_selected = ratio(lambda run: list(zip(run["selected"][0], run["discretized"][0])))
    decode_vs_selected = ratio(lambda run: list(zip(run["selected"][1], run["discretized"][1])))
    ideal = {kind: 1 / (1 / table["attn"] + 1 / table["ssm"]) for kind, table in (("prefill", prefill), ("decode", decode))}
    rows = [("attention alone (its parts, run as the hybrid runs them)", "attn"), ("Mamba alone (the same)", "ssm"),
            ("attention alone, transformers' own LlamaForCausalLM", "attn-hf"),
            ("Mamba alone, transformers' own MambaForCausalLM (token-loop prefill)", "ssm-hf"),
            ("continuous hybrid (both in every block)", "hybrid"),
            ("selected segments chained by hand (attention, Mamba)", "selected"),
            ("discretized hybrid (the same)", "discretized")]
    lines = [f"Vocabulary {vocab}:", "", "| model | prefill tokens/s | decode tokens/s |", "|---|---:|---:|"]
    lines += [f"| {label} | {prefill[key]:.0f} | {decode[key]:.1f} |" for label, key in rows]
    lines.append(f"| ideal hybrid: 1 / (1/attention + 1/Mamba), the first two rows | {ideal['prefill']:.0f} | "
                 f"{ideal['decode']:.1f} |")
    return "\n".join(lines) + (
        f"\n\nContinuous hybrid / ideal throughput: prefill **{prefill_vs_ideal:.3f}**, decode **{decode_vs_ideal:.3f}** "
        f"(target >= 0.95). Discretized / selected segments: prefill **{prefill_vs_selected:.3f}**, decode "
        f"**{decode_vs_selected:.3f}** (target >= 0.95). Against transformers' own models the hybrid's prefill is "
        f"{prefill_vs_hf:.2f}x their ideal (our scan against a token loop; decode steps run the same kernels).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", default="256,32000", help="vocabulary sizes, one table each")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--prefills", type=int, default=5, help="prefill rounds per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    load_start = os.getloadavg()[0]
    tables = [report(args, int(vocab)) for vocab in args.vocab.split(",")]
    text = "\n".join(tables) + (
        f"\nRatios are medians over paired measurements (each round: one prefill, or one decode step, of every model, "
        f"back to back). The hybrid has one embedding and one head (attention's), the ideal counts both components' "
        f"(as the paper's does): with a small vocabulary the heads cost nothing and the ratio shows the mixture's own "
        f"overhead (projectors, glue); with a realistic one the saved head shows.\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
        f"{args.threads} threads; hidden {args.hidden}, {args.layers} layers per component, batch {args.batch}, prompt "
        f"{args.prompt} tokens, {args.new} decoded tokens, {args.prefills} prefills per run; medians over {args.repeat} "
        f"runs after a warm-up, models interleaved. Load average at start / end: {load_start:.2f} / "
        f"{os.getloadavg()[0]:.2f}.\n\n"
        f"Command: `python benchmarks/inference.py {' '.join(sys.argv[1:])}`\n")
    print(text)
    if args.write:
        write_section(args.write, "inference", "Inference", text)


if __name__ == "__main__":
    main()
