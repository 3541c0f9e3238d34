"""Training-step time and memory of Mamba: transformers' CPU path vs our chunked scan vs Mamba2.

    python benchmarks/scan.py [--lengths 128 256 512 1024 2048] [--threads 2] [--repeat 3]
                              [--max-step-seconds 120] [--mambapy-path DIR] [--write benchmarks/README.md]

One training step = forward + backward + AdamW step of a causal-LM loss, batch 8, hidden 128,
4 layers, vocabulary 256, models built from the project's family defaults (``Family.init_config``).
Variants, each run in a fresh subprocess (one per variant and length, run one after another):

- ``transformers``: ``MambaForCausalLM`` as is (its CPU scan: a Python loop over tokens);
- ``chunked``: the same model through ``MambaAdapter`` segments with ``scan_backend="chunked"``;
- ``mambapy``: the model with ``use_mambapy=True`` (transformers' parallel-scan path), when the
  ``mambapy`` package imports (``--mambapy-path`` adds a directory to the workers' path);
- ``mamba2``: transformers' ``Mamba2ForCausalLM`` of the same width and depth (its chunked SSD
  torch path), with the family default state size 128, and ``mamba2-n16`` with state size 16 (the
  Mamba models' state size).

Time: wall clock of one step; a variant whose first step takes under 10 s gets that step as
warm-up and reports the best of ``--repeat`` more (the machine is shared: the fastest run is the
one least disturbed by other processes). A variant whose step is predicted (from its
previous length, assuming time grows as T^2 for transformers and mambapy, as T otherwise) to exceed
``--max-step-seconds`` is skipped at that length and later ones; ratios there are marked as
extrapolated. Memory: the worker's peak resident set size (``ru_maxrss``) minus its resident
size just before the first step, i.e. what the steps added at their peak (activations, gradients,
optimizer state, allocator slack), in MiB.
"""

from __future__ import annotations

import argparse
import json
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
BATCH, HIDDEN, LAYERS, VOCAB = 8, 128, 4, 256
VARIANTS = ("transformers", "chunked", "mambapy", "mamba2", "mamba2-n16")
QUADRATIC = {"transformers", "mambapy"}  # how a variant's step time is predicted from the last length


# ---- worker: one variant at one length, in its own process -----------------------------------------


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(variant: str):
    """(model, forward: ids -> logits) for a variant."""

    from hybridc.components.adapters import build_model, load_adapter
    from hybridc.components.registry import get_family

    family = get_family("mamba2" if variant.startswith("mamba2") else "mamba")
    extra = {"use_mambapy": True} if variant == "mambapy" else {"state_size": 16} if variant == "mamba2-n16" else {}
    common = {"hidden_size": HIDDEN, "layers": LAYERS, "heads": None, "vocab_size": VOCAB, "max_length": None}
    model = build_model(family, family.init_config(common, extra), seed=0).train()
    if variant != "chunked":
        return model, lambda ids: model(ids).logits
    adapter = load_adapter(family, model)
    embedding, head = adapter.embedding(), adapter.lm_head()
    body = adapter.segment(0, adapter.num_layers, scan_backend="chunked")
    return model, lambda ids: head(body(embedding(ids)))


def worker(variant: str, length: int, repeat: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    if variant == "mambapy":
        import importlib.util

        if importlib.util.find_spec("mambapy") is None:
            return {"skipped": "mambapy not installed"}
    model, forward = build(variant)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, VOCAB, (BATCH, length), generator=torch.Generator().manual_seed(0))

    def step() -> float:
        start = time.perf_counter()
        logits = forward(ids)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB).float(), ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise RuntimeError(f"{variant} T={length}: loss {loss.item()}")
        return time.perf_counter() - start

    before = rss_mib()
    first = step()
    times = [first] if first >= 10 else [step() for _ in range(repeat)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": min(times), "median": statistics.median(times), "runs": len(times), "peak_mib": peak - before}


# ---- driver -------------------------------------------------------------------------------------------


def run_worker(variant: str, length: int, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    paths = [str(ROOT)] + ([str(args.mambapy_path)] if args.mambapy_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, str(length),
           "--repeat", str(args.repeat), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"skipped": "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def predict(variant: str, results: dict, length: int) -> float | None:
    """Step time predicted from the variant's last measured length (T^2 or T growth)."""
    measured = [(t, r["seconds"]) for t, r in sorted(results[variant].items()) if "seconds" in r]
    if not measured:
        return None
    t0, s0 = measured[-1]
    return s0 * (length / t0) ** (2 if variant in QUADRATIC else 1)


def extrapolate_quadratic(points: list[tuple[int, float]], length: int) -> float | None:
    """Least-squares fit s = a T + b T^2 through the measured points, evaluated at ``length``."""
    if len(points) < 2:
        return None
    import numpy as np

    ts = np.array([t for t, _ in points], dtype=float)
    ss = np.array([s for _, s in points], dtype=float)
    (a, b), *_ = np.linalg.lstsq(np.stack([ts, ts**2], 1), ss, rcond=None)
    return float(a * length + b * length**2)


def fmt_seconds(r: dict) -> str:
    if "seconds" not in r:
        return f"– ({r['skipped']})"
    return f"{r['seconds']:.2f}" + ("" if r["runs"] > 1 else " (1 run)")


def table(results: dict, lengths: list[int]) -> str:
    head = ["T", "transformers Mamba (s)", "ours, chunked (s)", "mambapy (s)", "Mamba2 N=128 (s)", "Mamba2 N=16 (s)",
            "speed-up vs transformers", "speed-up vs mambapy", "our time / Mamba2 N=128", "our time / Mamba2 N=16"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    slow = [(t, r["seconds"]) for t, r in sorted(results["transformers"].items()) if "seconds" in r]
    for t in lengths:
        row = {v: results[v][t] for v in VARIANTS}
        ours = row["chunked"].get("seconds")

        def ratio(num: dict, den: float | None, var: str = "") -> str:
            if den is None:
                return "–"
            if "seconds" in num:
                return f"{num['seconds'] / den:.1f}x"
            if var == "transformers":
                guess = extrapolate_quadratic(slow, t)
                return f"~{guess / den:.0f}x (extrapolated)" if guess else "–"
            return "–"

        cells = [str(t)] + [fmt_seconds(row[v]) for v in VARIANTS]
        cells += [ratio(row["transformers"], ours, "transformers"), ratio(row["mambapy"], ours)]
        for v in ("mamba2", "mamba2-n16"):
            den = row[v].get("seconds")
            cells.append(f"{ours / den:.2f}" if ours is not None and den else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", targets(results, lengths, slow)]
    mem = ["", "Peak memory added by the steps (MiB, peak RSS minus RSS before the first step):", "",
           "| T | " + " | ".join(VARIANTS) + " |", "|" + "---:|" * (len(VARIANTS) + 1)]
    for t in lengths:
        cells = [f"{results[v][t]['peak_mib']:.0f}" if "peak_mib" in results[v][t] else "–" for v in VARIANTS]
        mem.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines + mem) + "\n"


def targets(results: dict, lengths: list[int], slow: list[tuple[int, float]]) -> str:
    """The issue's targets at T = 1024: >= 100x transformers, within 3x of Mamba2, memory ~ T."""
    parts = []
    ours = results["chunked"].get(1024, {}).get("seconds")
    if ours is not None:
        theirs = results["transformers"][1024].get("seconds")
        how = "measured"
        if theirs is None:
            theirs = extrapolate_quadratic(slow, 1024)
            how = "extrapolated from T = " + ", ".join(str(t) for t, _ in slow)
        if theirs:
            parts.append(f"at T = 1024 our step is {theirs / ours:.0f}x faster than transformers' "
                         f"({how}; target >= 100x)")
        mamba2 = results["mamba2"][1024].get("seconds")
        if mamba2:
            parts.append(f"takes {ours / mamba2:.2f}x Mamba2's time (target <= 3x)")
    mem = [(t, results["chunked"][t]["peak_mib"]) for t in lengths if "peak_mib" in results["chunked"][t]]
    if len(mem) >= 2:
        (t0, m0), (t1, m1) = mem[-2], mem[-1]
        parts.append(f"our peak memory grows {m1 / m0:.2f}x from T = {t0} to {t1} ({t1 / t0:.0f}x the tokens)")
    return ("Targets: " + "; ".join(parts) + ".") if parts else ""


def machine(args: argparse.Namespace, load: tuple[float, float]) -> str:
    import torch
    import transformers

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"Machine: {cpu}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} torch threads, "
            f"no GPU. Load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f} (a shared machine: "
            "other processes ran too). Batch 8, hidden 128, 4 layers, vocabulary 256; best of "
            f"{args.repeat} steps after one warm-up step, or a single step where it takes over 10 s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-step-seconds", type=float, default=120.0)
    parser.add_argument("--mambapy-path", type=Path, help="a directory holding the mambapy package")
    parser.add_argument("--write", type=Path, help="replace the scan section of this Markdown file")
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeat, args.threads)))
        return

    load_start = os.getloadavg()[0]
    results: dict[str, dict[int, dict]] = {v: {} for v in VARIANTS}
    for length in args.lengths:
        for variant in VARIANTS:
            guess = predict(variant, results, length)
            earlier = [r for r in results[variant].values() if "skipped" in r]
            if variant not in args.variants:
                results[variant][length] = {"skipped": "not run"}
            elif earlier and earlier[-1]["skipped"].startswith("predicted"):
                results[variant][length] = {"skipped": "predicted over the limit"}
            elif guess is not None and guess > args.max_step_seconds:
                results[variant][length] = {"skipped": f"predicted {guess:.0f} s > {args.max_step_seconds:.0f} s"}
            else:
                results[variant][length] = run_worker(variant, length, args)
            print(f"T={length:5d} {variant:13s} {json.dumps(results[variant][length])}", flush=True)
    body = table(results, args.lengths) + "\n" + machine(args, (load_start, os.getloadavg()[0])) + "\n"
    print("\n" + body)
    if args.write:
        write_section(args.write, "scan", "Mamba selective scan", body)


if __name__ == "__main__":
    main()
