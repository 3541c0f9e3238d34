"""How many intra-op threads a training stage uses: torch's count on a quiet machine, fewer beside busy ones.

torch's threads meet at a barrier after every parallel op. When other processes keep the cores busy, the
system sets one of them aside now and then and the others wait for it at every op: a step of many small
ops (Mamba's scan, 24 layers) slowed 4.9-8x beside two busy processes on 2 cores, an attention step
3-5x, where one thread per free core slowed both by about the share of the cores they lost (2.2x)
(``benchmarks/contention.py``). So each stage starts on ``cores - others`` threads (at least one, at most
torch's default), ``others`` being the processes running right then (``/proc/loadavg``, sampled a few
times). ``HYBRIDC_THREADS=N`` fixes the count (the check is then skipped), as does torch's own
``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping

SAMPLES = 5
INTERVAL = 0.05  # seconds between samples


def running_others(read: Callable[[], str] | None = None, samples: int = SAMPLES, interval: float = INTERVAL) -> int | None:
    """Runnable threads on the machine besides the one asking (the median of a few samples of
    ``/proc/loadavg``'s running count), or None where that file does not exist."""
    def default_read() -> str:
        with open("/proc/loadavg") as f:
            return f.read()

    read = read or default_read
    counts = []
    for i in range(samples):
        try:
            running = int(read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(max(running - 1, 0))  # this thread is running while it reads
        if i + 1 < samples:
            time.sleep(interval)
    return int(statistics.median(counts))


def machine_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def bounded(threads: int) -> int:
    """A thread count the machine can run: at least 1, at most 4 per core (a count past that is a typo or
    another machine's, and millions of threads abort OpenMP's runtime)."""
    return max(1, min(int(threads), 4 * machine_cores()))


def clamp_omp_threads(env=os.environ) -> str | None:
    """Before torch loads (its OpenMP runtime reads ``OMP_NUM_THREADS`` then): an ``OMP_NUM_THREADS`` past
    ``bounded`` is lowered to it in ``env``; returns what was done, for a warning (None: nothing)."""
    value = env.get("OMP_NUM_THREADS", "").strip()
    try:
        wanted = int(value)
    except ValueError:
        return None
    if wanted == bounded(wanted):
        return None
    env["OMP_NUM_THREADS"] = str(bounded(wanted))
    return f"OMP_NUM_THREADS={value} is more threads than this machine runs; using {env['OMP_NUM_THREADS']}"


def fixed_threads(env: Mapping[str, str]) -> int | None:
    """The count the user fixed (``HYBRIDC_THREADS``, else ``OMP_NUM_THREADS``), or None; bounded by
    ``bounded`` (4 per core)."""
    for key in ("HYBRIDC_THREADS", "OMP_NUM_THREADS"):
        value = env.get(key, "").strip()
        if value:
            try:
                n = int(value)
            except ValueError:
                n = 0
            if n < 1:
                from ..errors import RunError

                raise RunError(f"{key}={value!r} is not a number of threads", f"set {key} to a whole number >= 1, "
                               "or unset it")
            return bounded(n)
    return None


def stage_threads(default: int, cores: int, others: int | None) -> int:
    """Threads for a stage: one per core the other processes leave free, at least 1, at most ``default``."""
    if others is None:
        return default
    return max(1, min(default, cores - others))


def choose_threads(default: int, env: Mapping[str, str] = os.environ, cores: int | None = None,
                   others: Callable[[], int | None] = running_others) -> tuple[int, str]:
    """(threads, why) for the next stage; ``default`` is torch's count when the run started."""
    fixed = fixed_threads(env)
    if fixed is not None:
        return fixed, "fixed by " + ("HYBRIDC_THREADS" if env.get("HYBRIDC_THREADS", "").strip() else "OMP_NUM_THREADS")
    if cores is None:
        cores = machine_cores()
    busy = others()
    n = stage_threads(default, cores, busy)
    if n < default:
        return n, f"{busy} other process{'es' if busy != 1 else ''} running on {cores} cores"
    return n, "the machine is quiet"
