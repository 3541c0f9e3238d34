"""`hybridc validate` on specs that ask for too much: its time and memory stay bounded, and torch is never loaded.

    python benchmarks/validate_bounds.py [--repeat 5] [--write benchmarks/README.md]

Runs `hybridc validate` in fresh processes on hostile specs -- a billion layers of families whose configs list a
type per layer (qwen3, jamba, gemma2, rwkv), every size at hybridc's caps, a budget over a family measured on
the meta device (left to `compile`), a budget over formula families (checked) -- and on `specs/budgeted.yaml`.
Per spec: the exit status, the median wall time and the largest peak RSS over the runs (from the child's
rusage), next to `python -c pass` and `python -c "import torch"` run the same way. Targets: under 1 s and
200 MB each. Prints a Markdown table (and writes it into the README's `validate-bounds` section).
"""

from __future__ import annotations

import argparse
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
STAGES = 'train:\n  stages: [{name: search, data: "recall(vocab=16, length=16, examples=64)", steps: 1}, {name: discretize}]\n'


def spec(components: str, hybrid: str = "") -> str:
    return "hybridc: 1\nname: bounded\ncomponents:\n" + textwrap.indent(components, "  ") + hybrid + STAGES


def hostile_specs() -> dict[str, str]:
    out = {}
    for family in ("qwen3", "jamba", "gemma2", "rwkv"):
        heads = "" if family == "rwkv" else "heads: 4, "
        out[f"{family}, layers: 10**9"] = spec(
            f"a:\n  init: {{family: {family}, hidden_size: 32, layers: 1000000000, {heads}vocab_size: 64}}\n")
    out["qwen3 at every cap (10,000 layers, width 2**20, vocabulary 2**24)"] = spec(
        "a:\n  init: {family: qwen3, hidden_size: 1048576, layers: 10000, heads: 16, vocab_size: 16777216}\n")
    pair = ("a:\n  init: {{family: {}, hidden_size: 32, layers: 2, heads: 4, vocab_size: 64, max_length: 64}}\n"
            "b:\n  init: {{family: mamba, hidden_size: 32, layers: 2, vocab_size: 64}}\n")
    out["budget over qwen3 (meta-measured: left to compile)"] = spec(
        pair.format("qwen3"), "hybrid:\n  budget: {flops_per_token: 0.6x}\n")
    out["budget over llama + mamba (formulas: checked)"] = spec(
        pair.format("llama"), "hybrid:\n  budget: {decode_state: 0.6x}\n")
    out["hybrid.width: 10**12"] = spec(pair.format("llama"), "hybrid:\n  width: 1000000000000\n")
    return out


def measure(cmd: list[str], repeat: int) -> tuple[int, float, float, float]:
    """(exit status, median wall seconds, median CPU seconds (user + system), largest peak RSS in MiB) of ``cmd``
    in fresh processes. CPU time is the work done, which other processes on a busy machine do not stretch."""
    times, cpu, peaks, status = [], [], [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, raw, usage = os.wait4(child.pid, 0)
        times.append(time.perf_counter() - start)
        cpu.append(usage.ru_utime + usage.ru_stime)
        peaks.append(usage.ru_maxrss / 1024)  # (KiB on Linux)
        status = os.waitstatus_to_exitcode(raw)
        child.returncode = status
    return status, statistics.median(times), statistics.median(cpu), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path, help="replace the validate-bounds table in this Markdown file")
    args = parser.parse_args()
    py = sys.executable
    script = Path(py).with_name("hybridc")  # the console script users run
    cli = [str(script)] if script.exists() else [py, "-m", "hybridc"]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("python -c pass (reference)", [py, "-c", "pass"]),
                ("python -c 'import torch' (reference)", [py, "-c", "import torch"]),
                ("specs/budgeted.yaml", cli + ["validate", "specs/budgeted.yaml"])]
        for i, (name, text) in enumerate(hostile_specs().items()):
            path = Path(tmp) / f"spec-{i}.yaml"
            path.write_text(text)
            rows.append((name, cli + ["validate", str(path)]))
        results = [(name, *measure(cmd, args.repeat)) for name, cmd in rows]
    base = results[0][2]
    lines = ["| `hybridc validate` on | exit | median wall time (s) | x python -c pass | median CPU time (s) | "
             "peak RSS (MiB) |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {status} | {t:.3f} | {t / base:.1f} | {c:.3f} | {rss:.0f} |"
              for name, status, t, c, rss in results]
    ours = [r for r in results if "reference" not in r[0]]
    worst_t, worst_c, worst_m = (max(r[i] for r in ours) for i in (2, 3, 4))
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {args.repeat} "
               f"runs each; load average (1 min) at start / end: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    table = ("\n".join(lines) + f"\n\nSlowest validate: {worst_t:.3f} s wall, {worst_c:.3f} s CPU (target < 1 s); "
             f"largest peak RSS: {worst_m:.0f} MiB (target < 200 MB).\n\nMachine: {machine}.\n")
    print(table)
    if args.write:
        write_section(args.write, "validate-bounds", "`validate` on specs that ask for too much", table)


if __name__ == "__main__":
    main()
