"""Start-up time of the torch-free commands, measured against references in the same run.

    python benchmarks/startup.py [--repeat 7] [--write benchmarks/README.md]

Times (median wall clock of fresh processes) `hybridc validate`, `fmt` and `diff` on the example
specs, next to a bare `python -c pass` and `python -c "import torch"`, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--write", type=Path, help="replace the startup table in this Markdown file")
    args = parser.parse_args()
    py = sys.executable
    script = Path(py).with_name("hybridc")  # the console script users run
    cli = [str(script)] if script.exists() else [py, "-m", "hybridc"]
    rows = [
        ("python -c pass (reference)", [py, "-c", "pass"]),
        ("python -c 'import torch' (reference)", [py, "-c", "import torch"]),
        ("hybridc validate specs/three-way.yaml", cli + ["validate", "specs/three-way.yaml"]),
        ("hybridc validate specs/fixed-alpha.yaml", cli + ["validate", "specs/fixed-alpha.yaml"]),
        ("hybridc fmt specs/three-way.yaml", cli + ["fmt", "specs/three-way.yaml"]),
        ("hybridc fmt --check specs/fixed-alpha.yaml", cli + ["fmt", "--check", "specs/fixed-alpha.yaml"]),
        ("hybridc diff specs/three-way.yaml specs/quickstart.yaml", cli + ["diff", "specs/three-way.yaml", "specs/quickstart.yaml"]),
        ("hybridc diff --graph (same specs)", cli + ["diff", "--graph", "specs/three-way.yaml", "specs/quickstart.yaml"]),
    ]
    results = [(name, wall(cmd, args.repeat)) for name, cmd in rows]
    base = results[0][1]
    lines = ["| command | median wall time (s) | x python -c pass |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {t:.3f} | {t / base:.1f} |" for name, t in results]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {args.repeat} runs each"
    table = "\n".join(lines) + f"\n\nMachine: {machine}.\n"
    print(table)
    if args.write:
        write_section(args.write, "startup", "Start-up of the torch-free commands", table)


if __name__ == "__main__":
    main()
