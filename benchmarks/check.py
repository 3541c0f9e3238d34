"""How long ``hybridc check`` takes on the quickstart, against references run in the same session.

    python benchmarks/check.py [--repeat 3] [--examples 20] [--write benchmarks/README.md]

Runs ``hybridc check specs/quickstart.yaml --examples N`` as a fresh process ``--repeat`` times, each after the
reference ``python -c "import torch, transformers; import hybridc.models.hybrid"`` (what any check pays before its
first model), and prints the median wall and CPU time of each, their ratio, and the machine's load average
(1 minute) before and after each run: on a shared machine, a run under load is slower, and the load says how
much of the time was the check's. The goal (issue #41): under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the process and its children, exit status) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--write", type=Path, help="replace the check table in this Markdown file")
    args = parser.parse_args()
    py = sys.executable
    script = Path(py).with_name("hybridc")
    cli = [str(script)] if script.exists() else [py, "-m", "hybridc"]
    reference = [py, "-c", "import torch, transformers; import hybridc.models.hybrid"]
    check = cli + ["check", "specs/quickstart.yaml", "--examples", str(args.examples)]
    runs: dict[str, list[tuple[float, float]]] = {"reference": [], "check": []}
    loads = []
    for _ in range(args.repeat):
        wall, cpu, _ = timed(reference)
        runs["reference"].append((wall, cpu))
        load_before = os.getloadavg()[0]
        wall, cpu, status = timed(check)
        if status != 0:
            raise SystemExit(f"hybridc check exited with {status}: run it by hand to see why")
        runs["check"].append((wall, cpu))
        loads.append((load_before, os.getloadavg()[0]))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    lines = ["| command | median wall (s) | median CPU (s) | x reference (wall) |", "|---|---:|---:|---:|",
             f"| `python -c \"import torch, transformers; import hybridc.models.hybrid\"` (reference) | "
             f"{med['reference'][0]:.1f} | {med['reference'][1]:.1f} | 1.0 |",
             f"| `hybridc check specs/quickstart.yaml --examples {args.examples}` | {med['check'][0]:.1f} | "
             f"{med['check'][1]:.1f} | {med['check'][0] / med['reference'][0]:.1f} |"]
    walls = ", ".join(f"{w:.0f}" for w, _ in runs["check"])
    load_text = "; ".join(f"{a:.1f} -> {b:.1f}" for a, b in loads)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {args.repeat} runs each"
    table = (("\n".join(lines)) + f"\n\nMachine: {machine}. Check runs: {walls} s; load average (1 min) before -> "
             f"after each: {load_text}.\n")
    print(table)
    if args.write:
        write_section(args.write, "check", "hybridc check on the quickstart", table)


if __name__ == "__main__":
    main()
