"""What the hybrid adds to its components: training-step time and peak memory, side by side.

    python benchmarks/overhead.py [--hidden 256] [--length 512] [--batch 2] [--layers 2] [--repeat 5]
                                  [--threads 2] [--attention llama|gpt-neox|gpt-neo] [--ssm mamba|mamba2]
                                  [--write benchmarks/README.md]

A two-block hybrid of an attention model (``--attention``: a Llama-style one by default) and a
state-space model (``--ssm``: Mamba by default, or Mamba2) (each ``--layers`` layers, width
``--hidden``, vocabulary 256), mixture searched (both components run in every block), against references
built from the same parts in the same process: each component alone (its embedding -> its segments ->
its head, exactly the modules the hybrid holds, so the Mamba scan is the same), and the hybrid's
projectors alone (forward + backward on an input of the right shape that requires grad, as inside a network). A training step is forward +
backward + AdamW on a causal-LM loss. Also: the discretized hybrid (attention | Mamba, with the switch
projectors) against the same selected segments chained by hand. Time: median of ``--repeat`` steps after
two warm-up steps, variants interleaved so load drifts hit them alike. Memory: peak RSS each variant's steps
add (the VmHWM peak, reset after the models are built, minus VmRSS before the steps), measured in a fresh
subprocess per variant.
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
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("attn", "ssm", "projectors", "hybrid", "selected", "discretized")


def spec_text(args) -> str:
    return textwrap.dedent(f"""\
        hybridc: 1
        name: overhead
        components:
          attn: {{init: {{family: {args.attention}, hidden_size: {args.hidden}, layers: {args.layers}, heads: 8,
                  vocab_size: 256, max_length: {args.length}}}, blocks: split(2)}}
          ssm: {{init: {{family: {args.ssm}, hidden_size: {args.hidden}, layers: {args.layers}, vocab_size: 256}},
                 blocks: split(2)}}
        hybrid: {{projector: linear, mixture: search}}
        """)


def build(args, tmp: Path):
    """Every variant as (parameters, loss function of a batch)."""
    import torch

    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    path = tmp / "overhead.yaml"
    path.write_text(spec_text(args))
    rs = load_spec(path)
    hybrid = lower(rs).train()
    discrete = lower(rs, selection=["attn", "ssm"]).train()

    def lm_loss(logits, ids):
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))

    def alone(name):
        embed = hybrid.embed.sources[name]
        segments = [block.segments[name] for block in hybrid.blocks]
        head = hybrid.head.heads[name]
        modules = torch.nn.ModuleList([embed, *segments, head])

        def loss(ids):
            h = embed(ids)
            for segment in segments:
                h = segment(h)
            return lm_loss(head(h), ids)

        return list(modules.parameters()), loss

    def projectors():
        mods = torch.nn.ModuleList([p for block in hybrid.blocks for d in (block.in_proj, block.out_proj) for p in d.values()])

        def loss(ids):
            # the input requires grad, as inside a network: backward computes the projectors' input gradients too
            h = torch.randn(ids.shape[0], ids.shape[1], args.hidden, generator=torch.Generator().manual_seed(0),
                            requires_grad=True)
            total = 0
            for block in hybrid.blocks:
                for name in block.segments:
                    total = total + block.projector_out[name](block.projector_in[name](h)).square().mean()
            return total

        return list(mods.parameters()), loss

    def selected():
        d = discrete

        def loss(ids):
            h = d.embed.sources["attn"](ids)
            h = d.blocks[0].segments["attn"](h)
            h = d.blocks[1].projector_in["ssm"](h)
            h = d.blocks[1].segments["ssm"](h)
            h = d.blocks[1].projector_out["ssm"](h)
            return lm_loss(d.head.heads["attn"](h), ids)

        return list(d.parameters()), loss

    return {
        "attn": alone("attn"), "ssm": alone("ssm"), "projectors": projectors(),
        "hybrid": (list(hybrid.parameters()), lambda ids: lm_loss(hybrid(ids).logits, ids)),
        "selected": selected(),
        "discretized": (list(discrete.parameters()), lambda ids: lm_loss(discrete(ids).logits, ids)),
    }


def make_steps(args, variants):
    import torch

    ids = torch.randint(0, 256, (args.batch, args.length), generator=torch.Generator().manual_seed(1))
    steps = {}
    for name, (params, loss_fn) in variants.items():
        opt = torch.optim.AdamW(params, lr=1e-4)

        def step(params=params, loss_fn=loss_fn, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss_fn(ids).backward()
            opt.step()

        steps[name] = step
    return steps


def worker(args) -> None:
    """One variant in this process: print the peak RSS its steps add (MiB)."""
    import tempfile

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        steps = make_steps(args, {args.worker: build(args, Path(tmp))[args.worker]})
        before = status_mib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current size
            f.write("5")
        for _ in range(2):
            steps[args.worker]()
        print(json.dumps({"memory_mib": status_mib("VmHWM") - before}))


def status_mib(key: str) -> float:
    """A /proc/self/status size in MiB (VmRSS: now, VmHWM: peak since the last reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention", choices=["llama", "gpt-neox", "gpt-neo"], default="llama")
    parser.add_argument("--ssm", choices=["mamba", "mamba2"], default="mamba")
    parser.add_argument("--worker", choices=VARIANTS)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    import tempfile

    import torch

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        steps = make_steps(args, build(args, Path(tmp)))
        for step in steps.values():  # warm-up
            step()
            step()
        times = {name: [] for name in steps}
        for _ in range(args.repeat):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    memory = {}
    for name in VARIANTS:
        done = subprocess.run([sys.executable, __file__, "--worker", name, "--hidden", str(args.hidden), "--length",
                               str(args.length), "--batch", str(args.batch), "--layers", str(args.layers),
                               "--threads", str(args.threads), "--attention", args.attention, "--ssm", args.ssm],
                              capture_output=True, text=True, cwd=ROOT)
        memory[name] = json.loads(done.stdout.strip().splitlines()[-1])["memory_mib"] if done.returncode == 0 else None
    rounds = range(args.repeat)  # ratios per round of back-to-back steps, then the median
    hybrid_ratio = statistics.median(times["hybrid"][r] / (times["attn"][r] + times["ssm"][r] + times["projectors"][r])
                                     for r in rounds)
    discrete_ratio = statistics.median(times["discretized"][r] / times["selected"][r] for r in rounds)
    rows = [
        (f"attention ({args.attention}) alone (its embedding, segments, head)", "attn"), (f"{args.ssm} alone", "ssm"),
        ("the hybrid's projectors alone", "projectors"), ("hybrid (searched mixture, both components run)", "hybrid"),
        ("selected segments chained by hand (attention, then Mamba)", "selected"), ("discretized hybrid (the same)", "discretized"),
    ]
    lines = ["| variant | step (s) | peak memory added (MiB) |", "|---|---:|---:|"]
    for label, key in rows:
        mem = f"{memory[key]:.0f}" if memory[key] is not None else "-"
        lines.append(f"| {label} | {med[key]:.3f} | {mem} |")
    text = "\n".join(lines) + (
        f"\n\nHybrid step / (attention + {args.ssm} + projectors) = **{hybrid_ratio:.3f}** (target <= 1.05); "
        f"discretized / selected segments = **{discrete_ratio:.3f}** (medians of per-round ratios: each round runs "
        f"every variant's step back to back).\n\n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {args.threads} threads; hidden {args.hidden}, {args.layers} layers per component, "
        f"sequence {args.length}, batch {args.batch}; median of {args.repeat} steps after 2 warm-up steps, variants "
        f"interleaved. Load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f}.\n\n"
        f"Command: `python benchmarks/overhead.py {' '.join(sys.argv[1:])}`\n")
    print(text)
    if args.write:
        key = "overhead" if (args.attention, args.ssm) == ("llama", "mamba") else f"overhead-{args.attention}-{args.ssm}"
        write_section(args.write, key, f"Hybrid overhead ({args.attention} + {args.ssm})", text)


if __name__ == "__main__":
    main()
