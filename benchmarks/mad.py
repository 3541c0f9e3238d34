"""MAD proxy tasks on the CPU preset: an attention + Mamba hybrid against each component alone.

    python benchmarks/mad.py [--tasks in-context-recall,selective-copying] [--steps 600] [--lrs 1e-3,3e-3,1e-2]
                             [--write benchmarks/README.md]

Runs ``hybridc mad`` on ``benchmarks/mad-spec.yaml`` (a Llama-style attention model and a Mamba model, width
64, two layers, two blocks, DARTS search) with the ``cpu`` preset: for each task and learning rate the hybrid
(searched) and each component alone train from scratch with the same budget; per model the learning rate
with the best validation accuracy is kept and its test accuracy (macro average, MAD's metric) reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="in-context-recall,selective-copying")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lrs", default="1e-3,3e-3,1e-2")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-mad"))
    parser.add_argument("--spec", type=Path, default=ROOT / "benchmarks" / "mad-spec.yaml")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    from transformers.utils import logging as hf_logging

    from hybridc.experiments.mad import MadBudget, run_mad
    from hybridc.spec import load_spec

    hf_logging.set_verbosity_error()
    started = time.time()
    rs = load_spec(args.spec)
    budget = MadBudget(steps=args.steps, batch_size=args.batch_size, lrs=tuple(float(x) for x in args.lrs.split(",")))
    results = run_mad(rs, args.out, tasks=tuple(args.tasks.split(",")), preset="cpu", budget=budget,
                      say=lambda text: print(text, file=sys.stderr))
    lines = ["| task | hybrid | attention alone | Mamba alone | hybrid - best component | searched alphas (attn, ssm per block) |",
             "|---|---:|---:|---:|---:|---|"]
    for task, row in results["tasks"].items():
        test = row["test"]
        best = max(test["attn"], test["ssm"])
        alphas = " ".join("[" + ", ".join(f"{a:.2f}" for a in r) + "]" for r in row["alphas"])
        lines.append(f"| {task} | {test['hybrid']:.3f} | {test['attn']:.3f} | {test['ssm']:.3f} | "
                     f"{100 * (test['hybrid'] - best):+.1f} points | {alphas} |")
    text = "\n".join(lines) + (
        f"\n\nTest accuracy (MAD's macro average over the classes that are a target or predicted) at each model's best validation learning rate of "
        f"{args.lrs}; {args.steps} steps of batch {args.batch_size}, cpu preset. Target: the hybrid within 2 points "
        f"of the better component, or above it.\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{(time.time() - started) / 60:.1f} minutes. Command: `python benchmarks/mad.py {' '.join(sys.argv[1:])}`\n")
    print(text)
    if args.write:
        write_section(args.write, "mad", "MAD proxy tasks (cpu preset)", text)


if __name__ == "__main__":
    main()
