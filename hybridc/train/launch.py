"""``hybridc train --num-processes N``: relaunch the same command under torchrun, N processes on this
machine (gloo on CPU, NCCL on GPU). Inside, Accelerate reads torchrun's environment; ``accelerate launch``
and ``torchrun -m hybridc train`` work the same way with their own flags (multi-node included)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def without_num_processes(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--num-processes":
            skip = True
            continue
        if arg.startswith("--num-processes="):
            continue
        out.append(arg)
    return out


def relaunch(processes: int, argv: list[str]) -> int:
    """Run ``hybridc <argv>`` (minus --num-processes) as ``processes`` torchrun workers; their exit status."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "hybridc",
               *without_num_processes(argv)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(command, env=env).returncode


def launched_alone(environ) -> tuple[str, str] | None:
    """(message, hint) when ``accelerate launch --num_processes N`` (N > 1) started this as its only process:
    its simple launcher, which it picks on a CPU without ``--multi_cpu``, sets the rendezvous address for N
    processes but starts one, with no rank or world size. None otherwise."""
    from_accelerate = "ACCELERATE_MIXED_PRECISION" in environ or "ACCELERATE_USE_CPU" in environ
    if from_accelerate and "MASTER_ADDR" in environ and "WORLD_SIZE" not in environ and "RANK" not in environ:
        return ("accelerate launch asked for several processes but started only this one (its simple launcher: "
                "on a CPU it needs --multi_cpu to start more)",
                "use `hybridc train SPEC --num-processes N` (torchrun, gloo on the CPU), or `accelerate launch "
                "--multi_cpu --num_processes N -m hybridc train SPEC`")
    return None


def check_precision(device: str, mixed_precision: str) -> None:
    """``--mixed-precision fp16`` is a GPU mode (float16 autocast with loss scaling): refused on the CPU,
    as ``--help`` says, before anything runs."""
    if mixed_precision == "fp16" and device != "cuda":
        from ..errors import LaunchError

        raise LaunchError("--mixed-precision fp16 needs a GPU (--device cuda)",
                          "on the CPU use --mixed-precision bf16 (bfloat16 autocast) or no")
