"""Training steps on a shared machine: Mamba-130M against GPT-Neo-125M beside busy processes.

    python benchmarks/contention.py [--length 512] [--busy 0 1 2 4] [--rounds 3] [--write benchmarks/README.md]

Both components are built by hybridc at the paper's shapes with random weights (GPT-Neo-125M: 12 layers,
width 768, 12 heads, local/global attention; Mamba-130M: 24 layers, width 768, state 16, expand 2), inside
one hybrid, and each is trained alone: its embedding -> its segments -> its head, the modules the hybrid
holds (so Mamba runs what hybridc's "auto" scan backend picks: the fused CPU kernels where they build),
batch 1, forward + backward + AdamW on a causal-LM loss.

For each number of busy processes (each a pure-Python loop that keeps one core busy), and with float32
subnormals kept or flushed to zero (``torch.set_flush_denormal``), the two steps are interleaved for
``--rounds`` rounds after a warm-up step each (and two more for each model before the first setting: a
process's first steps fault in fresh memory pages and run slower); the table shows medians and each model's slowdown against
its own quiet time (0 busy, same flush setting), and their ratio (Mamba's slowdown / GPT-Neo's).

``threads``: ``fixed`` keeps torch's default count (one per core) whatever the load; ``chosen`` is what
``hybridc train`` does at each stage start (``hybridc.train.threads.choose_threads``: one thread per core
the other processes leave free).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = """\
hybridc: 1
name: contention
tokenizer: bytes
components:
  neo: {{init: {{family: gpt-neo, hidden_size: 768, layers: 12, heads: 12, vocab_size: 50257, max_length: {length}}}}}
  mamba: {{init: {{family: mamba, hidden_size: 768, layers: 24, vocab_size: 50280}}}}
hybrid: {{projector: linear, mixture: search}}
"""


def busy_loop() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


def build(length: int):
    """{"neo": step, "mamba": step}: one training step of each component alone."""
    import torch

    from hybridc.models.hybrid import lower
    from hybridc.spec import load_spec

    tmp = Path(tempfile.mkdtemp(prefix="hybridc-contention-"))
    (tmp / "spec.yaml").write_text(SPEC.format(length=length))
    hybrid = lower(load_spec(tmp / "spec.yaml")).train()
    ids = torch.randint(0, 50257, (1, length), generator=torch.Generator().manual_seed(0))
    steps = {}
    for name in ("neo", "mamba"):
        embed, head = hybrid.embed.sources[name], hybrid.head.heads[name]
        segments = [block.segments[name] for block in hybrid.blocks]
        params = list(torch.nn.ModuleList([embed, *segments, head]).parameters())
        opt = torch.optim.AdamW(params, lr=1e-4)

        def step(embed=embed, segments=segments, head=head, opt=opt):
            opt.zero_grad(set_to_none=True)
            h = embed(ids)
            for segment in segments:
                h = segment(h)
            logits = head(h)
            loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
            loss.backward()
            opt.step()

        steps[name] = step
    return steps


def timed(step) -> float:
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def measure(steps, rounds: int) -> dict[str, list[float]]:
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(timed(step))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", type=Path, help="replace this script's section of a markdown file")
    args = parser.parse_args()

    import torch

    from hybridc.train.threads import choose_threads

    steps = build(args.length)
    default = torch.get_num_threads()
    for _ in range(2):  # the allocator's first steps fault in fresh pages: the first quiet row would look slow
        for step in steps.values():
            step()
    rows = []  # (threads policy, flush, busy, neo, mamba, spreads, load, threads)
    plan = [("fixed", False, k, args.rounds) for k in args.busy if k in (0, 2)]
    plan += [("chosen", ftz, k, args.rounds) for ftz in (False, True) for k in (args.busy if not ftz else [0, 2])]
    for policy, ftz, k, rounds in plan:
        torch.set_flush_denormal(ftz)
        hogs = [mp.Process(target=busy_loop, daemon=True) for _ in range(k)]
        for p in hogs:
            p.start()
        try:
            time.sleep(0.5)
            threads = choose_threads(default, env={})[0] if policy == "chosen" else default
            torch.set_num_threads(threads)
            times = measure(steps, rounds)
        finally:
            for p in hogs:
                p.terminate()
            for p in hogs:
                p.join()
            torch.set_num_threads(default)
        row = (policy, ftz, k, statistics.median(times["neo"]), statistics.median(times["mamba"]),
               max(times["neo"]) / min(times["neo"]), max(times["mamba"]) / min(times["mamba"]), os.getloadavg()[0],
               threads)
        rows.append(row)
        print(f"{policy:6s} ftz={ftz!s:5s} busy={k} threads={threads}: neo {row[3]:.2f} s, mamba {row[4]:.2f} s "
              f"(spread {row[5]:.2f}x / {row[6]:.2f}x, load {row[7]:.1f})", flush=True)
    torch.set_flush_denormal(False)

    quiet = {f: (neo, mamba) for m, f, k, neo, mamba, *_ in rows if k == 0 and m == "fixed"}
    quiet.setdefault(True, next((r[3], r[4]) for r in rows if r[2] == 0 and r[1]))
    lines = ["| threads | subnormals | busy processes | torch threads | GPT-Neo-125M step | Mamba-130M step "
             "| Mamba / GPT-Neo | GPT-Neo slowdown | Mamba slowdown | ratio of slowdowns |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for policy, ftz, k, neo, mamba, _, _, _, threads in rows:
        q_neo, q_mamba = quiet[ftz]  # against the quiet machine with torch's default threads
        slow_neo, slow_mamba = neo / q_neo, mamba / q_mamba
        lines.append(f"| {policy} | {'flushed' if ftz else 'kept'} | {k} | {threads} | {neo:.2f} s | {mamba:.2f} s "
                     f"| {mamba / neo:.2f} | {slow_neo:.2f}x | {slow_mamba:.2f}x | {slow_mamba / slow_neo:.2f} |")
    body = textwrap.dedent(f"""\
        Measured with `python benchmarks/contention.py --length {args.length} --busy {' '.join(map(str, args.busy))} \\
        --rounds {args.rounds}` on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},
        torch {torch.__version__}, {default} torch threads by default; T = {args.length}, batch 1, medians over
        interleaved rounds after a warm-up step; slowdowns against the quiet machine with the default threads.

        """) + "\n".join(lines) + "\n"
    print(body)
    if args.write:
        write_section(args.write, "contention", "Training beside busy processes (Mamba-130M vs GPT-Neo-125M)", body)


if __name__ == "__main__":
    main()
