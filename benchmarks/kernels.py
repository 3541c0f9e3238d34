"""One Mamba-130M layer's scan and conv, forward + backward: the fused CPU kernels against the PyTorch paths.

    python benchmarks/kernels.py [--lengths 512 1024 2048] [--repeat 5] [--write benchmarks/README.md]

At Mamba-130M's width (d_inner 1536, state 16, conv kernel 4), batch 1, token-major inputs as the mixer
makes them: the selective scan by the ``fused`` backend against the ``chunked`` one (the pure-PyTorch
fallback), and the causal conv1d + SiLU by ``hybridc.kernels.fused_conv`` against transformers' path (a
channel-major ``conv1d`` on a transposed copy, cut to T, SiLU, transposed back to token-major as the
mixer needs it). Time: the median of ``--repeat`` forward + backward passes after one warm-up, the
variants interleaved, at 1 thread and at torch's default count.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import textwrap
import time
from pathlib import Path

from report import write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
D_INNER, STATE, KERNEL = 1536, 16, 4


def variants(length: int):
    """{name: function running one forward + backward}."""
    import torch
    import torch.nn.functional as F

    from hybridc.kernels.fused_conv import causal_conv1d_silu
    from hybridc.kernels.fused_scan import fused_scan
    from hybridc.kernels.scan import chunked_scan

    g = torch.Generator().manual_seed(0)
    wide = torch.randn(1, length, 2 * D_INNER, generator=g, requires_grad=True)  # in_proj's output
    u = torch.randn(1, length, D_INNER, generator=g).transpose(1, 2).requires_grad_()
    dt = (0.1 * torch.rand(1, length, D_INNER, generator=g)).transpose(1, 2).requires_grad_()
    A = (-torch.rand(D_INNER, STATE, generator=g) * 4).requires_grad_()
    BC = torch.randn(1, length, 2 * STATE, generator=g, requires_grad=True)  # x_proj's output, token-major
    weight = torch.randn(D_INNER, KERNEL, generator=g, requires_grad=True)
    bias = torch.randn(D_INNER, generator=g, requires_grad=True)
    gy = torch.randn(1, D_INNER, length, generator=g)

    def scan(fn):
        def run():
            B, C = BC[..., :STATE].transpose(1, 2), BC[..., STATE:].transpose(1, 2)  # (1, N, T) views
            fn(B, C).backward(gy)
        return run

    def conv_torch():
        x = wide[..., :D_INNER].transpose(1, 2)  # (1, I, T), a strided view
        y = F.silu(F.conv1d(x, weight[:, None], bias, padding=KERNEL - 1, groups=D_INNER)[..., :length])
        y.transpose(1, 2).contiguous().backward(gy.transpose(1, 2))

    def conv_fused():
        causal_conv1d_silu(wide[..., :D_INNER], weight, bias).backward(gy.transpose(1, 2))

    return {
        "scan, chunked": scan(lambda B, C: chunked_scan(u, dt, A, B, C)),
        "scan, fused": scan(lambda B, C: fused_scan(u, dt, A, B, C)[0]),
        "conv + SiLU, transformers' path": conv_torch,
        "conv + SiLU, fused": conv_fused,
    }


def measure(lengths: list[int], repeat: int, threads: int) -> dict[tuple[str, int], float]:
    import torch

    torch.set_num_threads(threads)
    out = {}
    for length in lengths:
        runs = variants(length)
        for run in runs.values():
            run()
        times = {name: [] for name in runs}
        for _ in range(repeat):
            for name, run in runs.items():
                began = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - began)
        out.update({(name, length): statistics.median(t) for name, t in times.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    import torch

    default = torch.get_num_threads()
    load = os.getloadavg()[0]
    counts = sorted({1, default})
    results = {threads: measure(args.lengths, args.repeat, threads) for threads in counts}
    names = list(variants(8))
    lines = ["| T | threads | " + " | ".join(names) + " | scan speed-up | conv speed-up |",
             "|---:|---:|" + "---:|" * (len(names) + 2)]
    for length in args.lengths:
        for threads in counts:
            r = results[threads]
            ms = [r[(n, length)] * 1e3 for n in names]
            lines.append(f"| {length} | {threads} | " + " | ".join(f"{x:.1f} ms" for x in ms)
                         + f" | {ms[0] / ms[1]:.1f}x | {ms[2] / ms[3]:.1f}x |")
    body = textwrap.dedent(f"""\
        Measured with `python benchmarks/kernels.py --lengths {' '.join(map(str, args.lengths))} --repeat {args.repeat}`
        on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__};
        one Mamba-130M layer (d_inner {D_INNER}, state {STATE}, conv kernel {KERNEL}), batch 1, forward + backward,
        medians of {args.repeat}. Load average at start / end: {load:.2f} / {os.getloadavg()[0]:.2f}.

        """) + "\n".join(lines) + "\n"
    print(body)
    if args.write:
        write_section(args.write, "kernels", "CPU kernels: one Mamba-130M layer's scan and conv", body)


if __name__ == "__main__":
    main()
