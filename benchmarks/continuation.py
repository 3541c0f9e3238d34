"""Mamba with a generation cache: several tokens after a filled cache, our scan from the cached state
against transformers' path (one token at a time), in one process.

    python benchmarks/continuation.py [--hidden 512] [--layers 12] [--prefix 128] [--tokens 32,128,512]
                                      [--repeat 5] [--threads 2] [--write benchmarks/README.md]

A Mamba model (width ``--hidden``, ``--layers`` layers) run as one hybridc segment with a cache: a prefill of
``--prefix`` tokens, then one forward of N more tokens (a chat's next message). Timed: that forward, with the
segment's scan backend "chunked" (the scan starts from the cached SSM state, the conv from the cached inputs)
and "transformers" (its full-sequence scan restarts from zero, so hybridc feeds the tokens one by one).
Both leave the same cache; the logits agree (checked here, within 1e-4 of the largest magnitude).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from report import write_section


def continuation_seconds(adapter, segment, prefix: torch.Tensor, more: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Prefill ``prefix`` (B, P), then time one forward of ``more`` (B, N): seconds and its output (B, N, d)."""
    cache = adapter.new_cache()
    h = adapter.embedding()(prefix)
    segment(h, context=adapter.prepare(h, None, None, cache))
    h = adapter.embedding()(more)
    context = adapter.prepare(h, None, None, cache)
    start = time.perf_counter()
    out = segment(h, context=context)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--prefix", type=int, default=128)
    parser.add_argument("--tokens", default="32,128,512")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import MambaConfig, MambaForCausalLM
    from transformers.utils import logging as hf_logging

    from hybridc.components.adapters.mamba import MambaAdapter

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    model = MambaForCausalLM(MambaConfig(hidden_size=args.hidden, num_hidden_layers=args.layers, vocab_size=256)).eval()
    runs = {backend: MambaAdapter(model, scan_backend=backend) for backend in ("chunked", "transformers")}
    segments = {backend: adapter.segment(0, args.layers) for backend, adapter in runs.items()}
    generator = torch.Generator().manual_seed(0)
    lines = ["| new tokens after the cache | our scan from the cached state (s) | one token at a time (s) | speed-up |",
             "|---:|---:|---:|---:|"]
    with torch.no_grad():
        for n in (int(x) for x in args.tokens.split(",")):
            ids = torch.randint(0, 256, (1, args.prefix + n), generator=generator)
            times: dict[str, list[float]] = {backend: [] for backend in runs}
            outs = {}
            for _ in range(args.repeat):  # interleaved: drifts of the machine hit both alike
                for backend, adapter in runs.items():
                    seconds, outs[backend] = continuation_seconds(adapter, segments[backend], ids[:, :args.prefix],
                                                                  ids[:, args.prefix:])
                    times[backend].append(seconds)
            ref = outs["transformers"]
            diff = ((outs["chunked"] - ref).abs().max() / ref.abs().max().clamp(min=1)).item()
            if diff > 1e-4:
                raise SystemExit(f"outputs differ by {diff:.2e} at {n} tokens")
            ours, theirs = (statistics.median(times[b]) for b in ("chunked", "transformers"))
            lines.append(f"| {n} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.1f}x |")
    text = "\n".join(lines) + (
        f"\n\nMamba, width {args.hidden}, {args.layers} layers, batch 1, {args.prefix} tokens already cached; medians of "
        f"{args.repeat} interleaved runs. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, {args.threads} threads.\n\n"
        f"Command: `python benchmarks/continuation.py {' '.join(sys.argv[1:])}`\n")
    print(text)
    if args.write:
        write_section(args.write, "continuation", "Several tokens after a filled Mamba cache", text)


if __name__ == "__main__":
    main()
