"""Training steps at the paper's shapes: time and peak memory per step as T grows.

    python benchmarks/scale.py [--lengths 512 1024 2048] [--rounds 2] [--write benchmarks/README.md]
                               [--plot docs/scale.png]

Models, built by hybridc with random weights at the shapes of the paper's components: GPT-Neo-125M
(12 layers, width 768, 12 heads, local/global attention), Mamba-130M (24 layers, width 768, state 16),
and their hybrid (each cut into 2 blocks, linear projectors, searched mixture: both run in every block).
A step is forward + backward + AdamW on a causal-LM loss, batch 1. Each (model, T) runs in a fresh process
that builds the model, takes a warm-up step and one timed step, and reports the peak resident memory the
steps added (VmHWM after minus VmRSS before); rounds are interleaved over every (model, T), and the table
shows medians. ``hybrid / (neo + mamba)`` compares the hybrid's step with the sum of its components' steps
(the projectors are about 4% of its FLOPs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("neo", "mamba", "hybrid")
SPEC = """\
hybridc: 1
name: scale
components:
  neo: {{init: {{family: gpt-neo, hidden_size: 768, layers: 12, heads: 12, vocab_size: 50257, max_length: {length}}},
         blocks: split(2)}}
  mamba: {{init: {{family: mamba, hidden_size: 768, layers: 24, vocab_size: 50280}}, blocks: split(2)}}
hybrid: {{projector: linear, mixture: search}}
"""


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker(model: str, length: int) -> None:
    """One timed step of ``model`` at ``length`` in this process; prints JSON."""
    sys.path.insert(0, str(ROOT))
    import torch

    from hybridc.nn.hybrid import lower
    from hybridc.spec import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="hybridc-scale-"))
    (tmp / "spec.yaml").write_text(SPEC.format(length=length))
    hybrid = lower(load_spec(tmp / "spec.yaml")).train()
    ids = torch.randint(0, 50257, (1, length), generator=torch.Generator().manual_seed(0))
    if model == "hybrid":
        params, forward = list(hybrid.parameters()), lambda: hybrid(ids).logits
    else:
        embed, head = hybrid.embed.sources[model], hybrid.head.heads[model]
        segments = [block.segments[model] for block in hybrid.blocks]
        params = list(torch.nn.ModuleList([embed, *segments, head]).parameters())

        def forward():
            h = embed(ids)
            for segment in segments:
                h = segment(h)
            return head(h)

    opt = torch.optim.AdamW(params, lr=1e-4)

    def step() -> float:
        began = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = forward()
        torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).backward()
        opt.step()
        return time.perf_counter() - began

    before = rss_kib("VmRSS")
    step()
    seconds = step()
    print(json.dumps({"seconds": seconds, "peak_mib": (rss_kib("VmHWM") - before) / 1024}))


def plot(path: Path, lengths: list[int], seconds: dict[str, list[float]]) -> None:
    """Step time against T on log-log axes, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"neo": "GPT-Neo-125M", "mamba": "Mamba-130M", "hybrid": "hybrid (both, 2 blocks, searched)"}
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, values in seconds.items():
        ax.loglog(lengths, values, marker="o", label=labels[model])
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xticks(lengths, [str(t) for t in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("training step (s), batch 1")
    ax.set_title("Training-step time at the paper's shapes (2 CPU cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--plot", type=Path, help="a log-log plot of step time against T")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    results: dict[tuple[str, int], list[dict]] = {}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for length in args.lengths:
            for model in MODELS:
                done = subprocess.run([sys.executable, __file__, "--worker", model, str(length)], capture_output=True,
                                      text=True, cwd=ROOT, check=True)
                out = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault((model, length), []).append(out)
                print(f"round {r + 1}: {model} T={length}: {out['seconds']:.2f} s, {out['peak_mib']:.0f} MiB", flush=True)
    load.append(os.getloadavg()[0])

    def med(model: str, length: int, key: str) -> float:
        return statistics.median(x[key] for x in results[(model, length)])

    lines = ["| T | GPT-Neo-125M | Mamba-130M | Mamba / GPT-Neo | hybrid | hybrid / (neo + mamba) "
             "| peak MiB neo / mamba / hybrid | hybrid peak / (neo + mamba) |",
             "|---:|---:|---:|---:|---:|---:|---|---:|"]
    for length in args.lengths:
        neo, mamba, hyb = (med(m, length, "seconds") for m in MODELS)
        pn, pm, ph = (med(m, length, "peak_mib") for m in MODELS)
        lines.append(f"| {length} | {neo:.2f} s | {mamba:.2f} s | {mamba / neo:.2f} | {hyb:.2f} s | {hyb / (neo + mamba):.2f} "
                     f"| {pn:.0f} / {pm:.0f} / {ph:.0f} | {ph / (pn + pm):.2f} |")
    if len(args.lengths) > 1:
        first, last = args.lengths[0], args.lengths[-1]
        slopes = {m: math.log(med(m, last, "seconds") / med(m, first, "seconds")) / math.log(last / first) for m in MODELS}
        lines.append("")
        lines.append("Growth with T (log-log slope of step time, T = {}..{}): ".format(first, last)
                     + ", ".join(f"{m} {s:.2f}" for m, s in slopes.items()) + ".")
    import torch

    body = textwrap.dedent(f"""\
        Measured with `python benchmarks/scale.py --lengths {' '.join(map(str, args.lengths))} --rounds {args.rounds}`
        on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__},
        {torch.get_num_threads()} torch threads; batch 1, medians over {args.rounds} interleaved rounds (one timed
        step after a warm-up, a fresh process per model and T). Load average at start / end: {load[0]:.2f} / {load[1]:.2f}.

        """) + "\n".join(lines) + "\n"
    print(body)
    if args.plot:
        plot(args.plot, args.lengths, {m: [med(m, t, "seconds") for t in args.lengths] for m in MODELS})
    if args.write:
        write_section(args.write, "scale", "At the paper's shapes (GPT-Neo-125M, Mamba-130M, their hybrid)", body)


if __name__ == "__main__":
    main()
