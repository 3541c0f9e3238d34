"""The six built-in families before and after a change of hybridc: training-step time, side by side.

    python benchmarks/families_ab.py --reference REV [--families gpt2 gpt-neo gpt-neox llama mamba mamba2]
                                     [--hidden 256] [--layers 4] [--length 512] [--batch 2] [--rounds 5]
                                     [--write benchmarks/README.md]

Each family is a one-component hybrid (``projector: none``, ``mixture: fixed([[1], [1]])``, two blocks):
the path a component takes inside any hybrid (segments, contexts, head), with nothing else to time. The
reference is hybridc at ``REV`` (a detached git worktree made here and removed after); the candidate is the
working tree. Every measurement is a fresh process (warm-ups, then the median of ``--steps`` training
steps: forward + backward + AdamW); each round runs every family on both sides back to back, the side that
goes first alternating by round, so load drifts hit both alike. The ratio is candidate / reference per
round; the table gives its median and range over the rounds. Also timed, in the same processes: one call of
the component's ``prepare`` (what it computes once per forward before its layers: positions, masks, rotary
tables; in the generic adapter, the shell run of the family's own forward), median of 20.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("gpt2", "gpt-neo", "gpt-neox", "llama", "mamba", "mamba2")

WORKER = textwrap.dedent("""\
    import json, statistics, sys, time, tempfile
    from pathlib import Path
    import torch
    from hybridc.spec import load_spec
    from hybridc.models.hybrid import lower
    family, hidden, layers, length, batch, warmup, steps, threads = sys.argv[1:9]
    hidden, layers, length, batch, warmup, steps, threads = map(int, (hidden, layers, length, batch, warmup,
                                                                      steps, threads))
    torch.set_num_threads(threads)
    heads = "" if family in ("mamba", "mamba2") else f", heads: 8, max_length: {length}"
    spec = (f"hybridc: 1\\nname: ab\\ncomponents:\\n  only:\\n    init: {{family: {family}, hidden_size: {hidden}, "
            f"layers: {layers}, vocab_size: 256{heads}}}\\n    blocks: split(2)\\n"
            "hybrid: {projector: none, mixture: 'fixed([[1], [1]])'}\\n")
    path = Path(tempfile.mkdtemp()) / "spec.yaml"
    path.write_text(spec)
    model = lower(load_spec(path), pretrained=False).train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(0))
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        loss = model(ids, labels=ids).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    # the component's per-forward preparation alone (positions, masks, rotary tables; the generic adapter's shell)
    adapter = model._adapters["only"]
    h = model.embed(ids, None)
    prepared = []
    with torch.no_grad():
        for _ in range(20):
            start = time.perf_counter()
            adapter.prepare(h)
            prepared.append(time.perf_counter() - start)
    print(json.dumps({"step": statistics.median(times), "prepare": statistics.median(prepared)}))
    """)


def measure(root: Path, family: str, args) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root), "HYBRIDC_THREADS": str(args.threads)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, family, str(args.hidden), str(args.layers), str(args.length),
         str(args.batch), str(args.warmup), str(args.steps), str(args.threads)],
        cwd=root, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{family} at {root}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="the git revision to compare with")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--short", args.reference], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference"
        subprocess.run(["git", "worktree", "add", "--detach", str(reference), commit], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            steps: dict[str, dict[str, list[float]]] = {f: {"reference": [], "candidate": []} for f in args.families}
            prepare: dict[str, dict[str, list[float]]] = {f: {"reference": [], "candidate": []} for f in args.families}
            for r in range(args.rounds):
                sides = [("reference", reference), ("candidate", ROOT)]
                if r % 2:
                    sides.reverse()
                for family in args.families:
                    for side, root in sides:
                        result = measure(root, family, args)
                        steps[family][side].append(result["step"])
                        prepare[family][side].append(result["prepare"])
                    print(f"round {r + 1}: {family} reference {steps[family]['reference'][-1]:.3f} s, "
                          f"candidate {steps[family]['candidate'][-1]:.3f} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(reference)], cwd=ROOT, capture_output=True)
    rows = ["| family | reference step (s) | candidate step (s) | candidate / reference (median, range) | "
            "prepare per forward, reference / candidate (ms) |", "|---|---:|---:|---:|---:|"]
    for family in args.families:
        ref, new = steps[family]["reference"], steps[family]["candidate"]
        ratios = [n / o for n, o in zip(new, ref)]
        ref_prep, new_prep = (1e3 * statistics.median(prepare[family][side]) for side in ("reference", "candidate"))
        rows.append(f"| {family} | {statistics.median(ref):.3f} | {statistics.median(new):.3f} | "
                    f"**{statistics.median(ratios):.3f}** ({min(ratios):.3f}-{max(ratios):.3f}) | "
                    f"{ref_prep:.2f} / {new_prep:.2f} |")
    body = "\n".join(rows) + "\n\n" + (
        f"Reference: hybridc at {commit}; candidate: the working tree. One-component hybrids (two blocks, no "
        f"projectors), width {args.hidden}, {args.layers} layers, sequence {args.length}, batch {args.batch}; "
        f"median of {args.steps} training steps after {args.warmup} warm-ups, a fresh process each, "
        f"{args.rounds} rounds alternating which side goes first. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {args.threads} threads. Load average at "
        f"start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f}.\n\n"
        f"Command: `python benchmarks/families_ab.py --reference {args.reference} --rounds {args.rounds} "
        f"--write benchmarks/README.md`\n")
    print(body)
    if args.write:
        write_section(args.write, "families-ab", "The six built-in families before and after a change", body)


if __name__ == "__main__":
    main()
