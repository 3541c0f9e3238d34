"""The fused CPU selective scan: one C pass per direction (``scan_kernel.c``), built on first use.

What it computes is ``chunked_scan``'s bare recurrence (see ``hybridc.nn.scan``)::

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * u_t * B_t,   y_t = sum_n C_t[n] h_t[n]

but where the chunked backend runs thousands of small PyTorch ops over materialized (chunks, N, d)
tensors (memory-bound), this one keeps each group of 64 channels' state in registers and cache and
walks the tokens once: the forward stores the state before every chunk of ``L`` tokens, the backward
recomputes a chunk's decays and states from it and runs backwards through them. Float32 (with a
polynomial 2^x accurate to about 2e-7 relative, 0 where the true value is a subnormal below
1.2e-38) and float64 (libm's exp2). Parallel over (batch row, channel group) with OpenMP, on the
number of threads torch uses; the results do not depend on it (sums across channel groups are
made per group and added in a fixed order).

Building: the C file is compiled once per machine with the system C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``; ``-O3 -march=native -fopenmp``) into ``$HYBRIDC_KERNEL_CACHE`` (default
``$XDG_CACHE_HOME/hybridc/kernels``, i.e. ``~/.cache/hybridc/kernels``), named by a hash of the source,
the compiler and the CPU's features, written atomically (a half-written file is never loaded; two
processes building at once each write their own temporary file). It links the process's OpenMP
runtime: torch's own ``libgomp.so.1`` is already loaded and is the one used, so the kernel and
torch share one thread pool. When no compiler works, ``available()`` is False and
``unavailable_reason()`` says why; the "auto" scan backend then runs the chunked scan.
``HYBRIDC_FUSED_SCAN=0`` turns the kernel off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("scan_kernel.c")
CHUNK = 16  # tokens per saved state: the backward's working set is 2 * CHUNK * N * 64 values per item
_LOG2E = 1.4426950408889634
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c11")


class _Kernel:
    """The loaded library (or why there is none), built at most once per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self.lib: ctypes.CDLL | None = None
        self.reason: str | None = None

    def get(self) -> ctypes.CDLL | None:
        with self._lock:
            if not self._done:
                self._done = True
                try:
                    self.lib = _bind(ctypes.CDLL(str(build())))
                except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                    self.reason = str(error)
            return self.lib


_KERNEL = _Kernel()


def available() -> bool:
    """Whether the fused kernel runs here (building it on first call); False when HYBRIDC_FUSED_SCAN=0."""
    if os.environ.get("HYBRIDC_FUSED_SCAN", "1") == "0":
        return False
    return _KERNEL.get() is not None


def unavailable_reason() -> str | None:
    """Why ``available()`` is False (None when it is True)."""
    if os.environ.get("HYBRIDC_FUSED_SCAN", "1") == "0":
        return "turned off by HYBRIDC_FUSED_SCAN=0"
    return None if _KERNEL.get() is not None else _KERNEL.reason


def cache_dir() -> Path:
    """Where built kernels are kept."""
    if os.environ.get("HYBRIDC_KERNEL_CACHE"):
        return Path(os.environ["HYBRIDC_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hybridc" / "kernels"


def compiler() -> str:
    """The C compiler to use: $CC, else the first of cc, gcc, clang on PATH."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise RuntimeError("no C compiler found (set CC, or install gcc or clang)")


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def build() -> Path:
    """The path of the built kernel, compiling it if this machine has not yet."""
    cc = compiler()
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, cc.encode(), " ".join(_FLAGS).encode(),
                                     platform.machine().encode(), _cpu_features().encode()])).hexdigest()[:16]
    target = cache_dir() / f"scan_kernel-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([cc, *_FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE.name} with {cc} failed: {done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    for suffix in ("f32", "f64"):
        forward, backward = getattr(lib, f"scan_fwd_{suffix}"), getattr(lib, f"scan_bwd_{suffix}")
        forward.argtypes = [i64] * 5 + [ptr] * 9 + [i32]
        backward.argtypes = [i64] * 5 + [ptr] * 14 + [i32]
        forward.restype = backward.restype = i32
    lib.scan_group_width.restype = i32
    return lib


def _ptr(x: torch.Tensor | None) -> int | None:
    return None if x is None else x.data_ptr()


def _token_major(x: torch.Tensor) -> torch.Tensor:
    """(b, c, T) -> (b, T, c) contiguous (no copy for a transposed view of a (b, T, c) tensor)."""
    return x.transpose(1, 2).contiguous()


def _call(fn, *args) -> None:
    if fn(*args, torch.get_num_threads()) != 0:
        raise MemoryError("the fused selective scan could not allocate its work buffers")


class FusedScan(torch.autograd.Function):
    """y = C . h for h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t, both directions in C.

    Inputs (b, d, T) / (d, N) / (b, N, T) / initial state (b, d, N) or None, one dtype (float32 or
    float64); ``keep`` says whether a backward will follow (the chunk states are then saved).
    Outputs: y (b, d, T) (a transposed view of token-major memory) and the last state (b, d, N).
    """

    @staticmethod
    def forward(ctx, u, dt, A, B, C, h0, keep: bool):
        lib = _KERNEL.get()
        b, d, T = u.shape
        N = A.shape[1]
        K = -(-T // CHUNK)
        fns = lib.scan_fwd_f32 if u.dtype == torch.float32 else lib.scan_fwd_f64
        u_t, dt_t, B_t, C_t = (_token_major(x) for x in (u, dt, B, C))
        A2 = (A * _LOG2E).t().contiguous()  # (N, d)
        h0_t = _token_major(h0) if h0 is not None else None  # (b, N, d)
        y = u.new_empty(b, T, d)
        hs = u.new_empty(b, K, N, d) if keep else None
        last = u.new_empty(b, N, d)
        _call(fns, b, T, d, N, CHUNK, _ptr(u_t), _ptr(dt_t), _ptr(A2), _ptr(B_t), _ptr(C_t), _ptr(h0_t),
              _ptr(y), _ptr(hs), _ptr(last))
        if keep:
            ctx.save_for_backward(u_t, dt_t, A, A2, B_t, C_t, hs)
        last = last.transpose(1, 2).contiguous()  # (b, d, N)
        ctx.mark_non_differentiable(last)
        return y.transpose(1, 2), last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, _g_last):
        u_t, dt_t, A, A2, B_t, C_t, hs = ctx.saved_tensors
        lib = _KERNEL.get()
        b, T, d = u_t.shape
        N = A.shape[1]
        groups = -(-d // lib.scan_group_width())
        fn = lib.scan_bwd_f32 if u_t.dtype == torch.float32 else lib.scan_bwd_f64
        gy_t = _token_major(gy.to(u_t.dtype))
        At = A.t().contiguous()
        g_u, g_dt = torch.empty_like(u_t), torch.empty_like(u_t)
        g_A = u_t.new_empty(b, N, d)
        g_B, g_C = u_t.new_empty(groups, b, T, N), u_t.new_empty(groups, b, T, N)
        g_h0 = u_t.new_empty(b, N, d)
        _call(fn, b, T, d, N, CHUNK, _ptr(u_t), _ptr(dt_t), _ptr(A2), _ptr(At), _ptr(B_t), _ptr(C_t), _ptr(hs),
              _ptr(gy_t), _ptr(g_u), _ptr(g_dt), _ptr(g_A), _ptr(g_B), _ptr(g_C), _ptr(g_h0))
        return (
            g_u.transpose(1, 2),
            g_dt.transpose(1, 2),
            g_A.sum(0).t(),
            g_B.sum(0).transpose(1, 2),
            g_C.sum(0).transpose(1, 2),
            g_h0.transpose(1, 2) if ctx.needs_input_grad[5] else None,
            None,
        )


def fused_scan(
    u: torch.Tensor,  # (b, d, T)
    dt: torch.Tensor,  # (b, d, T)
    A: torch.Tensor,  # (d, N)
    B: torch.Tensor,  # (b, N, T)
    C: torch.Tensor,  # (b, N, T)
    initial_state: torch.Tensor | None = None,  # (b, d, N)
) -> tuple[torch.Tensor, torch.Tensor]:  # (b, d, T), last state (b, d, N), in the compute dtype
    """The bare recurrence by the fused kernel (float32, or float64 when any input is)."""
    if not available():
        raise RuntimeError(f"the fused CPU scan is not available here: {unavailable_reason()}")
    dtype = torch.float32
    for x in (u, dt, A, B, C):
        dtype = torch.promote_types(dtype, x.dtype)
    inputs = [x.to(dtype) for x in (u, dt, A, B, C)]
    h0 = initial_state.to(dtype) if initial_state is not None else None
    keep = torch.is_grad_enabled() and any(x.requires_grad for x in (u, dt, A, B, C, initial_state) if x is not None)
    if u.shape[-1] == 0:
        last = h0.detach().clone() if h0 is not None else u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=dtype)
        return (inputs[0] * inputs[1]), last
    return FusedScan.apply(*inputs, h0, keep)
