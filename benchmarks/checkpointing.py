"""Gradient checkpointing: the peak memory and time of a hybrid's training step, with and without.

    python benchmarks/checkpointing.py [--hidden 512] [--layers 8] [--length 1024] [--batch 2] [--rounds 3]
                                       [--attention llama] [--ssm mamba] [--write benchmarks/README.md]

A two-block hybrid (``--attention`` + ``--ssm``, each ``--layers`` layers of width ``--hidden``, searched
mixture: both components run in every block) takes training steps (forward + backward + AdamW) with and
without ``model.gradient_checkpointing_enable()``. Each measurement is a fresh process: the peak resident
memory the steps add (VmHWM after the steps, reset once the model and optimizer exist, minus VmRSS before
them) and the median step time after a warm-up step; the two variants alternate within each round. The
gradients of the first step are compared between the two in one process (they must agree to 1e-5).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]


def spec_text(args) -> str:
    heads = ", heads: 8, max_length: {}".format(args.length)
    return textwrap.dedent(f"""\
        hybridc: 1
        name: checkpointing
        components:
          attn: {{init: {{family: {args.attention}, hidden_size: {args.hidden}, layers: {args.layers}{heads},
                  vocab_size: 256}}, blocks: split(2)}}
          ssm: {{init: {{family: {args.ssm}, hidden_size: {args.hidden}, layers: {args.layers}, vocab_size: 256}},
                 blocks: split(2)}}
        hybrid: {{projector: linear, mixture: search}}
        """)


def worker(args) -> None:
    import tempfile
    import time

    import torch

    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    torch.set_num_threads(args.threads)
    path = Path(tempfile.mkdtemp()) / "spec.yaml"
    path.write_text(spec_text(args))
    model = lower(load_spec(path), pretrained=False).train()
    if args.worker == "checkpointed":
        model.activation_checkpointing_enable()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 256, (args.batch, args.length), generator=torch.Generator().manual_seed(0))

    def step() -> float:
        start = time.perf_counter()
        model(ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    step()  # warm-up: the optimizer's state exists after it
    before = status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current size
        f.write("5")
    times = [step() for _ in range(args.steps)]
    print(json.dumps({"memory_mib": status_mib("VmHWM") - before, "step_s": statistics.median(times)}))


def same_gradients(args) -> float:
    """The largest difference between the first step's gradients with and without checkpointing."""
    import tempfile

    import torch

    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    path = Path(tempfile.mkdtemp()) / "spec.yaml"
    small = argparse.Namespace(**{**vars(args), "length": 128, "batch": 1})
    path.write_text(spec_text(small))
    rs = load_spec(path)
    ids = torch.randint(0, 256, (1, 128), generator=torch.Generator().manual_seed(1))
    grads = []
    for checkpointed in (False, True):
        model = lower(rs, pretrained=False).train()
        if checkpointed:
            model.activation_checkpointing_enable()
        torch.manual_seed(0)
        model(ids, labels=ids).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    return max((grads[0][n] - grads[1][n]).abs().max().item() for n in grads[0])


def status_mib(key: str) -> float:
    """A /proc/self/status size in MiB (VmRSS: now, VmHWM: peak since the last reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention", default="llama")
    parser.add_argument("--ssm", default="mamba")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--worker", choices=["plain", "checkpointed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    sys.path.insert(0, str(ROOT))
    largest = same_gradients(args)
    results: dict[str, list[dict]] = {"plain": [], "checkpointed": []}
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
             if k in ("hidden", "layers", "length", "batch", "steps", "threads", "attention", "ssm")]
    for r in range(args.rounds):
        for variant in (("plain", "checkpointed") if r % 2 == 0 else ("checkpointed", "plain")):
            done = subprocess.run([sys.executable, __file__, *flags, f"--worker={variant}"], capture_output=True,
                                  text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if done.returncode:
                raise SystemExit(done.stderr[-2000:])
            results[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}: {variant} {results[variant][-1]}", flush=True)
    memory = {v: statistics.median(x["memory_mib"] for x in results[v]) for v in results}
    time_ = {v: statistics.median(x["step_s"] for x in results[v]) for v in results}
    body = textwrap.dedent(f"""\
        | variant | peak memory a step adds (MiB) | step (s) |
        |---|---:|---:|
        | without checkpointing | {memory['plain']:.0f} | {time_['plain']:.2f} |
        | `gradient_checkpointing_enable()` | {memory['checkpointed']:.0f} | {time_['checkpointed']:.2f} |

        Checkpointed / plain: memory **{memory['checkpointed'] / memory['plain']:.2f}**, time
        **{time_['checkpointed'] / time_['plain']:.2f}**; the first step's gradients agree to {largest:.1e}.

        Hybrid: {args.attention} + {args.ssm}, {args.layers} layers each of width {args.hidden}, two blocks, searched
        mixture; sequence {args.length}, batch {args.batch}; medians of {args.rounds} rounds (a fresh process per
        variant and round, {args.steps} timed steps after a warm-up). Machine: {platform.machine()},
        {os.cpu_count()} cores, Python {platform.python_version()}, {args.threads} threads.

        Command: `python benchmarks/checkpointing.py --rounds {args.rounds} --write benchmarks/README.md`
        """)
    print(body)
    if args.write:
        write_section(args.write, "checkpointing", "Gradient checkpointing", body)


if __name__ == "__main__":
    main()
