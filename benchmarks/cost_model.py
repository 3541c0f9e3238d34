"""The cost model against the clock: every discretized choice of a four-block hybrid at the paper's component
shapes, its predicted cost (``hybridc compile``'s table) against its prefill and decode time measured here.

    python benchmarks/cost_model.py [--prompt 1024] [--new 16] [--rounds 3] [--every 1] [--threads 2]
                                    [--write benchmarks/README.md] [--figure docs/cost-model.png]

Components, random weights with the real shapes: GPT-Neo-125M (width 768, 12 layers, 12 heads) and
Mamba-130M (width 768, 24 layers), one vocabulary (50,280), each cut into 4 blocks (3 and 6 layers). The
continuous hybrid mixes them with fixed alphas (0.5 each), linear projectors, mixed embeddings and head;
the 16 discretized hybrids keep one component per block (``discretize_model``). Each discretized hybrid is
measured beside the continuous one: both prefill the same ``--prompt``-token prompt (batch 1) and then
decode ``--new`` tokens greedily with their caches, taking turns (one prefill of each, then one decode step
of each, ...), ``--rounds`` times after a warm-up round. Its measured share is the median, over rounds, of its
time divided by the continuous hybrid's in the same round; its predicted share is its FLOPs per token (prefill; at the prompt's length) or its parameters
read per decoded token (decode), divided by the continuous hybrid's.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_section  # noqa: E402

import torch  # noqa: E402

BLOCKS = 4
VOCAB = 50280


def spec_text(prompt: int) -> str:
    half = ", ".join(["[0.5, 0.5]"] * BLOCKS)
    return textwrap.dedent(f"""\
        hybridc: 1
        name: cost-model
        tokenizer: neo
        components:
          neo: {{init: {{family: gpt-neo, hidden_size: 768, layers: 12, heads: 12, vocab_size: {VOCAB},
                 max_length: {max(prompt + 64, 2048)}}}, blocks: split({BLOCKS})}}
          mamba: {{init: {{family: mamba, hidden_size: 768, layers: 24, vocab_size: {VOCAB}}}, blocks: split({BLOCKS})}}
        hybrid: {{projector: linear, embeddings: mix, head: mix, mixture: "fixed([{half}])"}}
        """)


def predictions(rs, selections) -> dict:
    """{selection or 'continuous': (FLOPs per token, parameters read per decoded token)} from the cost model."""
    from hybridc.graph.budget import cost_of, decode_params, flops
    from hybridc.graph.build import build_graph
    from hybridc.graph.selection import discretize_graph

    out = {"continuous": (cost_of(build_graph(rs), flops), cost_of(build_graph(rs), decode_params))}
    for sel in selections:
        graph = discretize_graph(rs, list(sel))
        out[sel] = (cost_of(graph, flops), cost_of(graph, decode_params))
    return out


@torch.no_grad()
def measure(models: dict, ids, new: int, rounds: int, say) -> dict:
    """{key: ([prefill seconds per round], [median decode step seconds per round])}, models in turn."""
    times = {key: ([], []) for key in models}
    for round_ in range(rounds + 1):  # round 0 warms up
        caches, tokens, steps = {}, {}, {key: [] for key in models}
        for key, model in models.items():
            caches[key] = model.new_cache()
            start = time.perf_counter()
            logits = model(ids, past_key_values=caches[key], use_cache=True).logits
            elapsed = time.perf_counter() - start
            tokens[key] = logits[:, -1:].argmax(-1)
            if round_:
                times[key][0].append(elapsed)
        for _ in range(new):
            for key, model in models.items():
                start = time.perf_counter()
                logits = model(tokens[key], past_key_values=caches[key], use_cache=True).logits
                steps[key].append(time.perf_counter() - start)
                tokens[key] = logits[:, -1:].argmax(-1)
        if round_:
            for key in models:
                times[key][1].append(statistics.median(steps[key]))
        say(f"round {round_}/{rounds} done" + (" (warm-up)" if round_ == 0 else ""))
    return times


def pearson(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return sxy / (sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys)) ** 0.5


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a x + b."""
    mx, my = statistics.mean(xs), statistics.mean(ys)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return a, my - a * mx


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, (p, m, title) in zip(axes, (("flops", "prefill", "prefill: FLOPs per token"),
                                        ("read", "decode", "decode: parameters read per token"))):
        xs, ys = [r[p] for r in rows], [r[m] for r in rows]
        ax.scatter(xs, ys, c=[r["attention_blocks"] for r in rows], cmap="viridis", s=40, edgecolors="k")
        for r in rows:
            if r["label"] == "continuous":
                ax.annotate("continuous", (r[p], r[m]), fontsize=7, xytext=(-50, -10), textcoords="offset points")
        lo, hi = min(xs + ys) * 0.95, max(xs + ys) * 1.02
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, alpha=0.6, label="measured = predicted")
        a, b = fit(xs, ys)
        ax.plot([lo, hi], [a * lo + b, a * hi + b], color="C3", lw=1, label=f"fit: {a:.2f} x + {b:.2f}")
        ax.set_xlabel(f"predicted share of the continuous hybrid ({title.split(': ')[1]})")
        ax.set_ylabel(f"measured {m} time share")
        ax.set_title(f"{title} (r = {pearson(xs, ys):.3f})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Cost model vs this machine: {len(rows) - 1} discretized choices of GPT-Neo-125M + Mamba-130M "
                 "shapes, 4 blocks (colour: attention blocks)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", type=int, default=1024)
    parser.add_argument("--new", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=1, help="measure every K-th of the 16 selections (in "
                        "product order: K = 3 takes neo x4, two and two in four layouts, mamba x4)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    from hybridc.models.export import discretize_model
    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    hf_logging.set_verbosity_error()
    began = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {text}", file=sys.stderr, flush=True)

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cost-model.yaml"
        path.write_text(spec_text(args.prompt))
        rs = load_spec(path)
    torch.manual_seed(0)
    hybrid = lower(rs).eval()
    selections = list(itertools.product(rs.names, repeat=BLOCKS))[::args.every]
    predicted = predictions(rs, selections)
    ids = torch.randint(0, VOCAB, (1, args.prompt), generator=torch.Generator().manual_seed(0))
    rows, continuous = [], {"prefill_s": [], "decode_ms": []}
    for sel in selections:  # one discretized model at a time (16 of them at once need ~20 GB), paired with the
        model = discretize_model(hybrid, list(sel)).eval()  # continuous hybrid round by round
        times = measure({"continuous": hybrid, sel: model}, ids, args.new, args.rounds, lambda _: None)
        del model
        say(f"measured {' | '.join(sel)}")

        def share(kind: int) -> float:
            return statistics.median(t / c for t, c in zip(times[sel][kind], times["continuous"][kind]))

        continuous["prefill_s"] += times["continuous"][0]
        continuous["decode_ms"] += [1e3 * t for t in times["continuous"][1]]
        rows.append({"label": " · ".join(sel), "attention_blocks": sel.count("neo"),
                     "flops": predicted[sel][0] / predicted["continuous"][0],
                     "read": predicted[sel][1] / predicted["continuous"][1], "prefill": share(0), "decode": share(1),
                     "prefill_s": statistics.median(times[sel][0]), "decode_ms": 1e3 * statistics.median(times[sel][1])})
    rows.append({"label": "continuous", "attention_blocks": BLOCKS, "flops": 1.0, "read": 1.0, "prefill": 1.0,
                 "decode": 1.0, "prefill_s": statistics.median(continuous["prefill_s"]),
                 "decode_ms": statistics.median(continuous["decode_ms"])})
    rows.sort(key=lambda r: r["flops"])
    lines = ["| blocks | FLOPs/token: predicted share | prefill: measured share | prefill s | "
             "read/token: predicted share | decode: measured share | decode ms/token |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['label']} | {r['flops']:.3f} | {r['prefill']:.3f} | {r['prefill_s']:.2f} | {r['read']:.3f} | "
              f"{r['decode']:.3f} | {r['decode_ms']:.1f} |" for r in rows]
    summary = []
    for p, m, name in (("flops", "prefill", "Prefill"), ("read", "decode", "Decode")):
        xs, ys = [r[p] for r in rows], [r[m] for r in rows]
        a, b = fit(xs, ys)
        worst = max(rows, key=lambda r: abs(r[m] / r[p] - 1))
        gaps = [abs(r[m] / r[p] - 1) for r in rows if r["label"] != "continuous"]
        summary.append(f"{name}: r = {pearson(xs, ys):.3f} (with the continuous hybrid), measured = {a:.2f} x predicted "
                       f"+ {b:.2f}; over the discretized choices |measured / predicted - 1| is {statistics.mean(gaps):.1%} "
                       f"on average, largest for {worst['label']} (measured {worst[m]:.3f}, predicted {worst[p]:.3f}).")
    text = "\n".join(lines) + "\n\n" + " ".join(summary) + textwrap.dedent(f"""

        Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__},
        {args.threads} threads; prompt {args.prompt} tokens, {args.new} decoded tokens, {args.rounds} rounds after a warm-up,
        {time.perf_counter() - began:.0f} s in all. Load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f}.

        Command: `python benchmarks/cost_model.py {' '.join(sys.argv[1:])}`
        """)
    print(text)
    if args.figure:
        figure(rows, args.figure)
    if args.write:
        write_section(args.write, "cost-model", "The cost model against measured prefill and decode time", text)


if __name__ == "__main__":
    main()
