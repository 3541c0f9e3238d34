"""The paper's Table 3 (Long Range Arena, from scratch), rerun: a GPT-Neo-style + Mamba hybrid against each
component alone, three seeds on one test split, read paired by seed.

    python benchmarks/lra.py [--seeds 0,1,2] [--tasks listops,pathfinder] [--preset cpu] [--data-seed 0]
                             [--out runs/benchmark-lra] [--reuse DIR] [--write benchmarks/README.md]

Runs ``hybridc lra`` on ``specs/lra.yaml`` (GPT-Neo-style attention and Mamba from scratch over the spec's 2
blocks, DASH search; the paper used up to 6) once per seed: ``train.seed`` is the seed (initialisation, batch
order, the search's draws) and ``train.data_seed`` stays ``--data-seed``, so every seed generates the same ListOps
expressions and Pathfinder images and is tested on the same test split. Per model the learning rate with the best validation accuracy is kept (the preset's), its test
accuracy reported; each comparison hybrid - component is the per-seed difference, its mean and a 95% Student-t
interval (``paired.py``). The paper's numbers (hybrid / GPT-Neo / Mamba, accuracy %) stand beside ours.

``--reuse DIR`` takes over the tasks of an earlier run (``DIR/seed<S>/lra-results.json``) that this one would redo
as they are (same spec, preset, seeds, data and budget, and each learning rate's run dir holding the very spec
this run would train: ``hybridc.experiments.lra.reusable``) and runs only the rest, into ``--out``; the reasons a
task is not reused are printed. An interrupted benchmark is finished this way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from paired import HEADER, paired
from report import write_section

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"listops": (38.7, 37.9, 20.7), "pathfinder": (91.5, 89.4, 85.8), "text": (72.4, 59.6, 87.7)}  # %


def seeded(rs, seed: int, data_seed: int):
    from hybridc.experiments.common import canonical, spec_from_data

    data = canonical(rs)
    data["train"]["seed"] = seed
    data["train"]["data_seed"] = data_seed
    return spec_from_data(data, rs.base_dir, f"lra seed {seed}")


def reused(runs: dict[int, dict]) -> dict[str, list[str]]:
    """Tasks taken over from earlier runs, by the directory that ran them."""
    out: dict[str, list[str]] = {}
    for seed, run in runs.items():
        for task, row in run["tasks"].items():
            if row.get("reused"):
                out.setdefault(row["reused"], []).append(f"seed {seed} {task}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", default="listops,pathfinder")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "lra.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-lra"))
    parser.add_argument("--reuse", type=Path, help="an earlier --out whose complete, matching tasks are kept")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    from transformers.utils import logging as hf_logging

    from hybridc.experiments.lra import reusable, run_lra
    from hybridc.spec import load_spec

    hf_logging.set_verbosity_error()
    started = time.time()
    base = load_spec(args.spec)
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = tuple(args.tasks.split(","))
    runs, minutes = {}, {}
    for seed in seeds:
        rs = seeded(base, seed, args.data_seed)
        done = {}
        earlier = args.reuse / f"seed{seed}" if args.reuse else None
        if earlier is not None and (earlier / "lra-results.json").is_file():
            done, why = reusable(json.loads((earlier / "lra-results.json").read_text()), earlier, rs, tasks=tasks,
                                 preset=args.preset, data_dir=args.data_dir)
            for task, reason in why.items():
                print(f"seed {seed}: {task} not reused: {reason}", file=sys.stderr)
        runs[seed] = run_lra(rs, args.out / f"seed{seed}", tasks=tasks, preset=args.preset, data_dir=args.data_dir,
                             done=done, say=lambda text: print(text, file=sys.stderr))
        minutes[seed] = {task: row.get("minutes") for task, row in runs[seed]["tasks"].items()}
    names = base.names  # neo, mamba
    lines = ["| task | model | paper (%) | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | lr kept per seed |",
             "|---|---|---:|" + "---:|" * len(seeds) + "---:|---|"]
    comparisons = []
    for task in tasks:
        if task not in runs[seeds[0]]["tasks"]:
            lines.append(f"| {task} | skipped: {runs[seeds[0]]['skipped'].get(task, 'not run')} |" + " |" * (len(seeds) + 3))
            continue
        for k, model in enumerate(["hybrid", *names]):
            acc = [100 * runs[s]["tasks"][task]["test"][model] for s in seeds]
            paper = f"{PAPER[task][k]:.1f}" if task in PAPER else "-"
            lrs = ", ".join(f"{runs[s]['tasks'][task]['lr'][model]:g}" for s in seeds)
            lines.append(f"| {task} | {model} | {paper} | " + " | ".join(f"{a:.1f}" for a in acc)
                         + f" | {statistics.mean(acc):.1f} | {lrs} |")
        for name in names:
            a = [100 * runs[s]["tasks"][task]["test"]["hybrid"] for s in seeds]
            b = [100 * runs[s]["tasks"][task]["test"][name] for s in seeds]
            comparisons.append(paired(a, b).row(f"{task}: hybrid - {name} (points)"))
    alphas = []
    for task in tasks:
        for s in seeds:
            row = runs[s]["tasks"].get(task)
            if row and row.get("alphas"):
                mean_neo = statistics.mean(r[0] for r in row["alphas"])
                alphas.append(f"{task} seed {s}: " + " ".join(f"{r[0]:.2f}" for r in row["alphas"])
                              + f" (mean {mean_neo:.2f})")
    plans = json.dumps({t: runs[seeds[0]]["tasks"][t]["budget"] for t in tasks if t in runs[seeds[0]]["tasks"]})
    text = "\n".join(lines) + "\n\n" + HEADER + "\n" + "\n".join(comparisons) + (
        f"\n\nTest accuracy (%) of each model at its best validation learning rate, {args.preset} preset, "
        f"`specs/lra.yaml` (GPT-Neo-style + Mamba, {base.num_blocks} blocks); seeds {args.seeds}, data seed "
        f"{args.data_seed} (one test split). Budgets per task: `{plans}`. Searched weight of GPT-Neo per block "
        f"(the rest is Mamba's): " + "; ".join(alphas) + ".\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        + "; ".join(f"seed {s}: " + ", ".join(f"{t} {m:.1f} min" if m is not None else f"{t} (time not recorded)"
                                              for t, m in per.items()) for s, per in minutes.items())
        + f" (this invocation {(time.time() - started) / 60:.1f} minutes"
        + "".join(f"; reused, run in `{where}`: " + ", ".join(sorted(what)) for where, what in reused(runs).items())
        + "). "
        f"Command: `python benchmarks/lra.py {' '.join(sys.argv[1:])}`\n")
    print(text)
    if args.write:
        write_section(args.write, f"lra-{args.preset}", f"Long Range Arena: the paper's Table 3 ({args.preset} preset)",
                      text)


if __name__ == "__main__":
    main()
