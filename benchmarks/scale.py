"""Training steps at the paper's shapes: time and peak memory per step as T grows, and where a hybrid's
step goes.

    python benchmarks/scale.py [--pair 130m|400m|extra] [--lengths 512 1024 2048] [--rounds 2]
                               [--warmup 2] [--steps 2] [--write benchmarks/README.md] [--plot docs/scale.png]

Models, built by hybridc with random weights at the shapes of the paper's components (``SHAPES``):
GPT-Neo-125M (12 layers, width 768, 12 heads, local/global attention), Mamba-130M (24 layers, width 768,
state 16), Pythia-160M (12 layers, width 768) and -410M (24 layers, width 1024, 16 heads), Mamba-370M (48
layers, width 1024) and Mamba2-130M (24 layers, width 768, state 128, 24 heads of 64, one group; vocabulary
50304 to cover its partner Pythia's tokenizer, not 50288; Mamba-370M likewise 50304, not 50280). A pair
(``--pair``: 130m = GPT-Neo-125M + Mamba-130M, 400m = Pythia-410M + Mamba-370M, the paper's hybrids;
extra = Pythia-160M + Mamba2-130M, timed alone only) is cut into 2 blocks each and joined by linear
projectors with a searched mixture (both run in every block).

Variants: each component alone (its embedding -> its segments -> its head: the modules the hybrid holds,
so Mamba runs the same scan), the hybrid, the hybrid's projectors alone (forward + backward on an input
that requires grad, as inside a network) and both components' embeddings and heads alone (on hidden
states that require grad). A step is forward + backward + AdamW on a causal-LM loss, batch 1. Each
(variant, T) runs in a fresh process that builds the model, takes ``--warmup`` steps and then ``--steps``
timed steps (their median is the process's time), and reports the peak resident memory the steps added
(VmHWM after minus VmRSS before); rounds are interleaved over every (variant, T), and tables show medians
over the rounds with their range. Two warm-up steps, not one: the memory allocator keeps faulting in fresh
pages for the first steps (a GPT-Neo-125M step at T = 1024 faulted 7.3 GB of pages in its first step, 3 GB
by its fourth, and took 7.9 s, then 6.1 s), and the hybrid, with twice the memory in flight, settles later:
timed at its second step it looked 1.2x its parts, at its fourth 1.0x.

Breakdown of the hybrid's step: the components' layers (each alone minus its embedding and head, taken
as half of both components' embeddings and heads, which are timed together), the
embeddings and heads, the projectors, and the rest (the hybrid minus all of those: the mixture's glue,
what the segments cost together beyond alone). ``hybrid / (a + b + projectors)`` is the issue's ratio.
The largest batch is an estimate: 24 GiB less the weights, gradients and AdamW's two moments (16 bytes
per parameter) divided by what one sequence adds at batch 1 (the step's added peak less the gradients and
moments, 12 bytes per parameter: the weights were resident before the steps), rounded down; the process's
own base (Python, torch: about 0.5 GB) is not counted.

``--both-ways`` measures only the pair's two components, per T in two ways: trained in turn in one process
(steps interleaved, as a hybrid trains them) and each in fresh processes, with per-round ratios.

``--from-log LOG`` writes the report from the per-round lines of an earlier run's output (parameter
counts are taken from the models, built again) instead of measuring.
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
SHAPES = {
    "neo": ("GPT-Neo-125M", "{{family: gpt-neo, hidden_size: 768, layers: 12, heads: 12, vocab_size: 50257, "
                            "max_length: {length}}}"),
    "mamba": ("Mamba-130M", "{{family: mamba, hidden_size: 768, layers: 24, vocab_size: 50280}}"),
    "pythia160": ("Pythia-160M", "{{family: gpt-neox, hidden_size: 768, layers: 12, heads: 12, vocab_size: 50304, "
                                 "max_length: {length}}}"),
    "pythia410": ("Pythia-410M", "{{family: gpt-neox, hidden_size: 1024, layers: 24, heads: 16, vocab_size: 50304, "
                                 "max_length: {length}}}"),
    "mamba370": ("Mamba-370M", "{{family: mamba, hidden_size: 1024, layers: 48, vocab_size: 50304}}"),
    "mamba2": ("Mamba2-130M", "{{family: mamba2, hidden_size: 768, layers: 24, vocab_size: 50304, state_size: 128, "
                              "heads: 24, n_groups: 1}}"),
}
PAIRS = {"130m": ("neo", "mamba"), "400m": ("pythia410", "mamba370"), "extra": ("pythia160", "mamba2")}
MEMORY_GIB = 24


def spec_text(pair: str, length: int) -> str:
    a, b = PAIRS[pair]
    return textwrap.dedent(f"""\
        hybridc: 1
        name: scale
        components:
          {a}: {{init: {SHAPES[a][1].format(length=length)}, blocks: split(2)}}
          {b}: {{init: {SHAPES[b][1].format(length=length)}, blocks: split(2)}}
        hybrid: {{projector: linear, mixture: search}}
        """).replace("{{", "{").replace("}}", "}")


def variants(pair: str) -> list[str]:
    a, b = PAIRS[pair]
    return [a, b] if pair == "extra" else [a, b, "projectors", "heads", "hybrid"]


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def build_hybrid(pair: str, length: int):
    """The pair's hybrid at ``length`` (random weights, training mode)."""
    sys.path.insert(0, str(ROOT))
    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="hybridc-scale-"))
    (tmp / "spec.yaml").write_text(spec_text(pair, length))
    return lower(load_spec(tmp / "spec.yaml")).train()


def make_step(hybrid, pair: str, variant: str, length: int):
    """(a function taking one training step of ``variant`` and returning its seconds, the parameters it
    updates): forward + backward + AdamW on a causal-LM loss, batch 1."""
    import torch

    names = PAIRS[pair]
    ids = torch.randint(0, 50257, (1, length), generator=torch.Generator().manual_seed(0))

    def lm_loss(logits):
        return torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])

    def hidden(width):  # hidden states as inside a network: they require grad
        return torch.randn(1, length, width, generator=torch.Generator().manual_seed(1), requires_grad=True)

    if variant == "hybrid":
        modules, loss = [hybrid], lambda: lm_loss(hybrid(ids).logits)
    elif variant == "projectors":
        modules = [p for block in hybrid.blocks for side in (block.in_proj, block.out_proj) for p in side.values()]

        def loss():
            h = hidden(hybrid.blocks[0].projector_in[names[0]].d_in)
            return sum(block.projector_out[n](block.projector_in[n](h)).square().mean() for block in hybrid.blocks for n in names)
    elif variant == "heads":
        modules = [m for n in names for m in (hybrid.embed.sources[n], hybrid.head.heads[n])]

        def loss():
            total = 0
            for n in names:
                width = hybrid.embed.sources[n](ids[:, :1]).shape[-1]
                h = hybrid.embed.sources[n](ids) + hidden(width)
                total = total + lm_loss(hybrid.head.heads[n](h))
            return total
    else:
        embed, head = hybrid.embed.sources[variant], hybrid.head.heads[variant]
        segments = [block.segments[variant] for block in hybrid.blocks]
        modules = [embed, *segments, head]

        def loss():
            h = embed(ids)
            for segment in segments:
                h = segment(h)
            return lm_loss(head(h))

    params = list({id(p): p for m in modules for p in m.parameters()}.values())
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step() -> float:
        began = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss().backward()
        opt.step()
        return time.perf_counter() - began

    return step, params


def minor_faults() -> int:
    """Minor page faults of this process so far (pages the kernel mapped in on first touch)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def worker(pair: str, variant: str, length: int, warmup: int, steps: int) -> None:
    """One timed step of ``variant`` of ``pair`` at ``length`` in this process; prints JSON."""
    import torch

    step, params = make_step(build_hybrid(pair, length), pair, variant, length)
    before = rss_kib("VmRSS")
    for _ in range(warmup):
        step()
    faulted = minor_faults()
    seconds = statistics.median(step() for _ in range(steps))
    print(json.dumps({"seconds": seconds, "peak_mib": (rss_kib("VmHWM") - before) / 1024,
                      "params": sum(p.numel() for p in params), "threads": torch.get_num_threads(),
                      "faults": (minor_faults() - faulted) / steps}))


def interleaved_worker(pair: str, length: int, warmup: int, rounds: int) -> None:
    """Both components of ``pair`` trained in this one process, steps interleaved (a, b, then b, a in the
    next round: neither always goes first); ``warmup`` untimed steps of each first. Prints JSON: the
    seconds of each round's two steps."""
    import torch

    hybrid = build_hybrid(pair, length)
    a, b = PAIRS[pair]
    steps = {v: make_step(hybrid, pair, v, length)[0] for v in (a, b)}
    for _ in range(warmup):
        for v in (a, b):
            steps[v]()
    timed, faults = [], []
    for r in range(rounds):
        order = (a, b) if r % 2 == 0 else (b, a)
        seconds, faulted = {}, {}
        for v in order:
            before = minor_faults()
            seconds[v] = steps[v]()
            faulted[v] = minor_faults() - before
        timed.append(seconds)
        faults.append(faulted)
    print(json.dumps({"rounds": timed, "faults": faults, "threads": torch.get_num_threads()}))


def plot(path: Path, lengths: list[int], seconds: dict[str, list[float]]) -> None:
    """Step time against T on log-log axes, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, values in seconds.items():
        ax.loglog(lengths, values, marker="o", label=label)
    parts = [label for label in seconds if not label.startswith("hybrid")]
    if len(parts) == 2 and len(seconds) == 3:  # the hybrid's reference: its two components' steps added
        ax.loglog(lengths, [a + b for a, b in zip(*(seconds[p] for p in parts))], ls="--", color="gray",
                  label=f"{parts[0]} + {parts[1]}")
    ax.set_xticks(lengths, [str(t) for t in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    low, high = min(min(v) for v in seconds.values()), max(max(v) for v in seconds.values())
    ticks = [t for t in (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500) if low / 1.5 <= t <= high * 1.5]
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("training step (s), batch 1")
    ax.set_title("Training-step time at the paper's shapes (2 CPU cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def label(pair: str, variant: str) -> str:
    if variant in SHAPES:
        return SHAPES[variant][0]
    a, b = (SHAPES[n][0] for n in PAIRS[pair])
    return {"hybrid": f"hybrid ({a} + {b}, 2 blocks, searched)", "projectors": "its projectors alone",
            "heads": "both embeddings and heads alone"}[variant]


def report(pair: str, lengths: list[int], rounds: int, warmup: int, steps: int, results: dict, load: list[float]) -> str:
    """The Markdown section: steps, memory, breakdown and ratios."""
    import torch

    a, b = PAIRS[pair]
    names = variants(pair)

    def med(v, t, key="seconds"):
        return statistics.median(x[key] for x in results[(v, t)])

    def spread(v, t):
        xs = [x["seconds"] for x in results[(v, t)]]
        return f"{med(v, t):.2f} s" + (f" ({min(xs):.2f}-{max(xs):.2f})" if len(xs) > 1 else "")

    lines = ["| T | " + " | ".join(label(pair, v) for v in names) + f" | {SHAPES[b][0]} / {SHAPES[a][0]} |",
             "|---:|" + "---:|" * (len(names) + 1)]
    for t in lengths:
        lines.append(f"| {t} | " + " | ".join(spread(v, t) for v in names) + f" | {med(b, t) / med(a, t):.2f} |")
    ratios = {t: [results[(b, t)][r]["seconds"] / results[(a, t)][r]["seconds"] for r in range(rounds)] for t in lengths}
    lines += ["", f"{SHAPES[b][0]} / {SHAPES[a][0]} per round: "
              + "; ".join(f"T = {t}: " + ", ".join(f"{x:.2f}" for x in ratios[t]) for t in lengths) + "."]
    lines += ["", "Peak memory added by a step (MiB) and the largest batch that fits "
              f"{MEMORY_GIB} GiB (estimated, see the script's doc):", "",
              "| T | " + " | ".join(label(pair, v) for v in names if v not in ("projectors", "heads"))
              + (" | hybrid / (sum of components) |" if "hybrid" in names else " |"),
              "|---:|" + "---|" * len([v for v in names if v not in ("projectors", "heads")])
              + ("---:|" if "hybrid" in names else "")]
    for t in lengths:
        cells = []
        for v in names:
            if v in ("projectors", "heads"):
                continue
            peak, params = med(v, t, "peak_mib"), results[(v, t)][0]["params"]
            per_sequence = max(1.0, peak - 12 * params / 2**20)
            batch = max(0, int((MEMORY_GIB * 1024 - 16 * params / 2**20) // per_sequence))
            cells.append(f"{peak:.0f} (batch <= {batch})")
        row = f"| {t} | " + " | ".join(cells)
        if "hybrid" in names:
            row += f" | {med('hybrid', t, 'peak_mib') / (med(a, t, 'peak_mib') + med(b, t, 'peak_mib')):.2f}"
        lines.append(row + " |")
    if "hybrid" in names:
        lines += ["", "Where the hybrid's step goes (medians, seconds and share of the hybrid's step):", "",
                  f"| T | {SHAPES[a][0]} layers | {SHAPES[b][0]} layers | embeddings + heads | projectors | rest (glue) "
                  "| hybrid | hybrid / (a + b + projectors), per round |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for t in lengths:
            hyb, heads, proj = med("hybrid", t), med("heads", t), med("projectors", t)
            half = heads / 2  # each component's own embedding and head, about half of both
            la, lb = med(a, t) - half, med(b, t) - half
            rest = hyb - la - lb - heads - proj
            per_round = [results[("hybrid", t)][r]["seconds"] / (results[(a, t)][r]["seconds"]
                         + results[(b, t)][r]["seconds"] + results[("projectors", t)][r]["seconds"]) for r in range(rounds)]
            cells = [f"{x:.2f} ({100 * x / hyb:.0f}%)" for x in (la, lb, heads, proj, rest)]
            lines.append(f"| {t} | " + " | ".join(cells) + f" | {hyb:.2f} | **{statistics.median(per_round):.2f}** ("
                         + ", ".join(f"{x:.2f}" for x in per_round) + ") |")
    if len(lengths) > 1:
        first, last = lengths[0], lengths[-1]
        shown = [v for v in names if v not in ("projectors", "heads")]
        slopes = {v: math.log(med(v, last) / med(v, first)) / math.log(last / first) for v in shown}
        lines += ["", f"Growth with T (log-log slope of step time, T = {first}..{last}): "
                  + ", ".join(f"{label(pair, v)} {s:.2f}" for v, s in slopes.items()) + "."]
    threads = sorted({x["threads"] for xs in results.values() for x in xs})
    return textwrap.dedent(f"""\
        Measured with `python benchmarks/scale.py --pair {pair} --lengths {' '.join(map(str, lengths))} --rounds {rounds}
        --warmup {warmup} --steps {steps}` on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},
        torch {torch.__version__}, {', '.join(map(str, threads))} torch threads; batch 1, medians over {rounds} interleaved
        rounds (range in brackets; each the median of {steps} steps after {warmup} warm-up steps, a fresh process per
        variant and T). Load average at start / end: {load[0]:.2f} / {load[1]:.2f}.

        """) + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", choices=sorted(PAIRS), default="130m")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first, in each process")
    parser.add_argument("--steps", type=int, default=2, help="timed steps, in each process (their median)")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--plot", type=Path, help="a log-log plot of step time against T")
    parser.add_argument("--from-log", type=Path, help="report an earlier run's output instead of measuring")
    parser.add_argument("--both-ways", action="store_true",
                        help="only the pair's two components, per T measured two ways: in one process, steps "
                             "interleaved (--rounds rounds after --warmup warm-up steps of each), and in fresh "
                             "processes (--fresh-rounds rounds); writes the section scale-both-ways-PAIR")
    parser.add_argument("--fresh-rounds", type=int, default=3, help="with --both-ways: fresh-process rounds")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--interleaved-worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--count", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], *map(int, args.worker[2:]))
        return
    if args.interleaved_worker:
        interleaved_worker(args.interleaved_worker[0], *map(int, args.interleaved_worker[1:]))
        return
    if args.count:
        count(*args.count[:2], int(args.count[2]))
        return
    if args.both_ways:
        body = both_ways(args)
        print(body)
        if args.write:
            a, b = (SHAPES[n][0] for n in PAIRS[args.pair])
            write_section(args.write, f"scale-both-ways-{args.pair}", f"{b} against {a}: one process and fresh "
                          "processes", body)
        return
    if args.from_log:
        results, load = from_log(args.pair, args.from_log)
        args.rounds = len(next(iter(results.values())))
        args.lengths = sorted({t for _, t in results})
    else:
        results, load = measure(args)
    body = report(args.pair, args.lengths, args.rounds, args.warmup, args.steps, results, load)
    print(body)
    if args.plot:
        shown = [v for v in variants(args.pair) if v not in ("projectors", "heads")]
        plot(args.plot, args.lengths, {label(args.pair, v): [statistics.median(x["seconds"] for x in results[(v, t)])
                                                             for t in args.lengths] for v in shown})
    if args.write:
        a, b = (SHAPES[n][0] for n in PAIRS[args.pair])
        title = f"{a} and {b}" + ("" if args.pair == "extra" else ", and their hybrid")
        write_section(args.write, f"scale-{args.pair}", f"At the paper's shapes: {title}", body)


def measure(args) -> tuple[dict, list[float]]:
    """Every (variant, T) in a fresh process, ``args.rounds`` interleaved rounds."""
    results: dict[tuple[str, int], list[dict]] = {}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for length in args.lengths:
            for variant in variants(args.pair):
                done = subprocess.run([sys.executable, __file__, "--worker", args.pair, variant, str(length),
                                       str(args.warmup), str(args.steps)],
                                      capture_output=True, text=True, cwd=ROOT)
                if done.returncode != 0:
                    sys.exit(f"{variant} at T = {length} failed:\n{done.stderr[-3000:]}")
                out = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault((variant, length), []).append(out)
                print(f"round {r + 1}: {variant} T={length}: {out['seconds']:.2f} s, {out['peak_mib']:.0f} MiB, "
                      f"{out['threads']} threads, load {os.getloadavg()[0]:.2f}", flush=True)
    load.append(os.getloadavg()[0])
    return results, load


def run_worker(*argv: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def both_ways(args) -> str:
    """The pair's second component against its first, per T: interleaved in one process and in fresh
    processes; per-round ratios (second / first), their median and range."""
    first, second = PAIRS[args.pair]
    names = {v: SHAPES[v][0] for v in (first, second)}
    load = [os.getloadavg()[0]]
    rows = []
    for length in args.lengths:
        one = run_worker("--interleaved-worker", args.pair, str(length), str(args.warmup), str(args.rounds))
        together = [r[second] / r[first] for r in one["rounds"]]
        print(f"T={length}, one process: " + ", ".join(f"{x:.3f}" for x in together), flush=True)
        fresh: dict[str, list[dict]] = {first: [], second: []}
        for r in range(args.fresh_rounds):
            for v in ((first, second) if r % 2 == 0 else (second, first)):
                fresh[v].append(run_worker("--worker", args.pair, v, str(length), str(args.warmup), str(args.steps)))
        apart = [b["seconds"] / a["seconds"] for a, b in zip(fresh[first], fresh[second])]
        print(f"T={length}, fresh processes: " + ", ".join(f"{x:.3f}" for x in apart), flush=True)

        def seconds(v):
            return statistics.median(r[v] for r in one["rounds"])

        def faults(rounds, v):
            return statistics.median(r[v] for r in rounds) / 1e6

        rows.append(
            f"| {length} | {seconds(second):.2f} | {seconds(first):.2f} | **{statistics.median(together):.3f}** "
            f"({min(together):.3f}-{max(together):.3f}) | "
            f"{statistics.median(x['seconds'] for x in fresh[second]):.2f} | "
            f"{statistics.median(x['seconds'] for x in fresh[first]):.2f} | **{statistics.median(apart):.3f}** "
            f"({min(apart):.3f}-{max(apart):.3f}) | {faults(one['faults'], second):.2f} / "
            f"{faults(one['faults'], first):.2f} |")
    load.append(os.getloadavg()[0])
    import torch

    head = (f"| T | one process: {names[second]} s | {names[first]} s | ratio: median (range over rounds) | "
            f"fresh: {names[second]} s | {names[first]} s | ratio: median (range) | page faults per step, one "
            f"process (M): {names[second]} / {names[first]} |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    return head + "\n" + "\n".join(rows) + "\n" + textwrap.dedent(f"""
        One process: both components of the hybrid (its embedding, segments and head of each) trained in turn
        in one process, {args.warmup} warm-up steps of each, then {args.rounds} rounds (which goes first alternates);
        ratio = {names[second]} / {names[first]} per round. Fresh processes: {args.fresh_rounds} rounds of one
        process per component ({args.warmup} warm-ups, median of {args.steps} steps), alternating which runs first;
        ratio per round. A step is forward + backward + AdamW on a causal-LM loss, batch 1. Machine: {platform.machine()},
        {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, {one['threads']} torch
        threads. Load average at start / end: {load[0]:.2f} / {load[1]:.2f}.

        Command: `python benchmarks/scale.py {' '.join(sys.argv[1:])}`
        """)


def count(pair: str, variant: str, length: int) -> None:
    """Print the parameters a variant's optimizer steps (what ``worker`` counts), without training."""
    sys.path.insert(0, str(ROOT))
    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="hybridc-scale-"))
    (tmp / "spec.yaml").write_text(spec_text(pair, length))
    hybrid = lower(load_spec(tmp / "spec.yaml"))
    names = PAIRS[pair]
    if variant == "hybrid":
        modules = [hybrid]
    elif variant == "projectors":
        modules = [p for block in hybrid.blocks for side in (block.in_proj, block.out_proj) for p in side.values()]
    elif variant == "heads":
        modules = [m for n in names for m in (hybrid.embed.sources[n], hybrid.head.heads[n])]
    else:
        modules = [hybrid.embed.sources[variant], *(b.segments[variant] for b in hybrid.blocks), hybrid.head.heads[variant]]
    print(sum(p.numel() for p in {id(p): p for m in modules for p in m.parameters()}.values()))


def from_log(pair: str, path: Path) -> tuple[dict, list[float]]:
    """Results from the "round R: VARIANT T=L: S s, M MiB" lines of an earlier run's output."""
    import re

    results: dict[tuple[str, int], list[dict]] = {}
    for line in path.read_text().splitlines():
        hit = re.match(r"round \d+: (\S+) T=(\d+): ([\d.]+) s, ([\d.]+) MiB", line)
        if hit:
            results.setdefault((hit[1], int(hit[2])), []).append({"seconds": float(hit[3]), "peak_mib": float(hit[4])})
    text = path.read_text()
    loads = re.search(r"Load average at start / end:\s+(\d+\.\d+) / (\d+\.\d+)", text)
    threads = re.search(r"(\d+) torch threads", text)
    for (variant, length), rows in results.items():
        done = subprocess.run([sys.executable, __file__, "--count", pair, variant, str(length)], capture_output=True,
                              text=True, cwd=ROOT, check=True)
        for row in rows:
            row.update(params=int(done.stdout.strip().splitlines()[-1]), threads=int(threads[1]) if threads else "?")
    return results, [float(loads[1]), float(loads[2])] if loads else [float("nan")] * 2


if __name__ == "__main__":
    main()
