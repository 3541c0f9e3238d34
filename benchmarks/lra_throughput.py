"""Classification throughput at LRA Text's length (the paper's rebuttal table: samples/s on IMDb bytes): each
component alone, the continuous hybrid and a discretized one, against the ideal 1 / (1/a + 1/b).

    python benchmarks/lra_throughput.py [--length 4000] [--batch 1] [--repeat 5] [--threads 2]
                                        [--selection neo,mamba] [--write benchmarks/README.md]

Models: ``specs/lra.yaml``'s components at its sizes (GPT-Neo-style: 6 layers, width 512, 8 heads; Mamba: 12
layers, width 512), built for LRA Text (``classify(2)`` over bytes, vocabulary 257, ``--length`` tokens; GPT-Neo's
positions raised to fit), from scratch (throughput does not depend on the weights). Each component alone is the
hybrid's own single-component form (its embedding, its layers, the classifier head: what ``train.baselines``
trains); the continuous hybrid runs both in each of the spec's blocks (2; search mixture, uniform alphas); the
discretized hybrid keeps ``--selection`` (one component per block; default: the components in turn). Ideal
throughputs: the continuous hybrid runs both components, 1 / (1/a + 1/b); a discretized one runs each selected
block, 1 / (sum over the B blocks of 1/B of that component's time).
Forward passes only (inference: ``torch.no_grad``), models interleaved one forward each per round so that the
shared machine's drifts hit them alike; samples/s from the median time, ratios the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from report import write_section

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"hybrid": 68.9, "neo": 87.7, "mamba": 283.5, "ideal": 67.0}  # IMDb samples/s, the paper's (GPU)


def build(args):
    from hybridc.models.export import discretize_model
    from hybridc.experiments.common import canonical, spec_from_data
    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec
    from hybridc.train.run import baseline_spec

    base = load_spec(args.spec)
    data = canonical(base)
    for component in data["components"].values():
        component["init"]["vocab_size"] = 257
        if "max_length" in component["init"]:
            component["init"]["max_length"] = max(component["init"]["max_length"], args.length)
    data["task"] = "classify(2)"
    data["train"]["stages"] = []
    rs = spec_from_data(data, base.base_dir, "lra throughput")
    hybrid = lower(rs).eval()
    selection = (args.selection.split(",") if args.selection
                 else [rs.names[b % len(rs.names)] for b in range(rs.num_blocks)])
    models = {name: lower(baseline_spec(rs, name, keep_stages=False)).eval() for name in rs.names}
    models["hybrid"] = hybrid
    models["discretized"] = discretize_model(hybrid, selection).eval()
    return rs, models, selection


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--selection", help="one component per block (default: the components in turn)")
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "lra.yaml")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    load_start = os.getloadavg()[0]
    rs, models, selection = build(args)
    a_name, b_name = rs.names
    ids = torch.randint(0, 256, (args.batch, args.length), generator=torch.Generator().manual_seed(0))
    times = {name: [] for name in models}
    for round_ in range(args.repeat + 1):  # the first round warms up
        for name, model in models.items():
            start = time.perf_counter()
            logits = model(input_ids=ids).logits
            elapsed = time.perf_counter() - start
            assert logits.shape == (args.batch, 2)
            if round_:
                times[name].append(elapsed)
        print(f"round {round_}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items() if t), file=sys.stderr)
    rate = {name: args.batch / statistics.median(t) for name, t in times.items()}
    blocks = rs.num_blocks
    ideal = 1 / (1 / rate[a_name] + 1 / rate[b_name])
    ideal_selected = 1 / sum(1 / (blocks * rate[m]) for m in selection)
    per_round = [(a + b) / h for a, b, h in zip(times[a_name], times[b_name], times["hybrid"])]
    per_round_selected = [sum(times[m][k] / blocks for m in selection) / times["discretized"][k]
                          for k in range(args.repeat)]
    vs_ideal, vs_selected = statistics.median(per_round), statistics.median(per_round_selected)
    lines = ["| model | samples/s (ours, CPU) | paper (IMDb, GPU) |", "|---|---:|---:|",
             f"| {a_name} alone (GPT-Neo-style) | {rate[a_name]:.3f} | {PAPER['neo']} |",
             f"| {b_name} alone (Mamba) | {rate[b_name]:.3f} | {PAPER['mamba']} |",
             f"| continuous hybrid (both in every block) | {rate['hybrid']:.3f} | {PAPER['hybrid']} |",
             f"| ideal: 1 / (1/a + 1/b) | {ideal:.3f} | {PAPER['ideal']} |",
             f"| discretized hybrid ({', '.join(selection)}) | {rate['discretized']:.3f} | - |",
             f"| ideal of that selection | {ideal_selected:.3f} | - |"]
    text = "\n".join(lines) + (
        f"\n\nContinuous hybrid / ideal: **{vs_ideal:.3f}** (the paper: {PAPER['hybrid'] / PAPER['ideal']:.3f}); "
        f"discretized / its ideal: **{vs_selected:.3f}**; {b_name} alone / {a_name} alone: "
        f"{rate[b_name] / rate[a_name]:.2f}x (the paper: {PAPER['mamba'] / PAPER['neo']:.2f}x). Medians of per-round "
        f"ratios (rounds: {min(per_round):.3f}-{max(per_round):.3f} and {min(per_round_selected):.3f}-"
        f"{max(per_round_selected):.3f}); samples/s from each model's median time.\n\n"
        f"Models: `specs/lra.yaml`'s sizes for LRA Text (classify(2), vocabulary 257), {args.length} tokens, batch "
        f"{args.batch}, forward only. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, {args.threads} threads; medians over {args.repeat} "
        f"rounds after a warm-up, models interleaved. Load average at start / end: {load_start:.2f} / "
        f"{os.getloadavg()[0]:.2f}. Command: `python benchmarks/lra_throughput.py {' '.join(sys.argv[1:])}`\n")
    print(text)
    if args.write:
        write_section(args.write, "lra-throughput", "Long Range Arena: classification throughput at LRA Text's length",
                      text)


if __name__ == "__main__":
    main()
