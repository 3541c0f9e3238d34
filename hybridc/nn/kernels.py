"""hybridc's CPU kernels (``mamba_kernels.c``): built with the system C compiler on first use, loaded
with ctypes.

The C file is compiled once per machine (``$CC``, else ``cc``, ``gcc`` or ``clang``; ``-O3
-march=native -fopenmp``) into ``$HYBRIDC_KERNEL_CACHE`` (default ``$XDG_CACHE_HOME/hybridc/kernels``,
i.e. ``~/.cache/hybridc/kernels``), named by a hash of the source, the compiler, the flags and the CPU's
features, and written atomically (a half-written file is never loaded; two processes building at once
each write their own temporary file). The library links the process's OpenMP runtime: torch's own
``libgomp.so.1`` is already loaded and is the one used, so the kernels and torch share one thread pool;
each call runs on ``torch.get_num_threads()`` threads. When no compiler works, ``available()`` is False
and ``unavailable_reason()`` says why (callers then use their PyTorch paths; a RuntimeWarning says so
once per process). ``HYBRIDC_FUSED_SCAN=0``
turns the kernels off.

ctypes releases the GIL for the duration of each call.
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
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("mamba_kernels.c")
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c11")
_ERRORS = {1: "could not allocate its work buffers", 2: "got a convolution kernel longer than it supports"}


class _Library:
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
                    warnings.warn(f"hybridc's CPU kernels are unavailable, Mamba runs the slower PyTorch scan: "
                                  f"{self.reason}", RuntimeWarning, stacklevel=2)
            return self.lib


_LIBRARY = _Library()


def _turned_off() -> bool:
    return os.environ.get("HYBRIDC_FUSED_SCAN", "1") == "0"


def available() -> bool:
    """Whether the kernels run here (building them on first call); False when HYBRIDC_FUSED_SCAN=0."""
    return not _turned_off() and _LIBRARY.get() is not None


def unavailable_reason() -> str | None:
    """Why ``available()`` is False (None when it is True)."""
    if _turned_off():
        return "turned off by HYBRIDC_FUSED_SCAN=0"
    return None if _LIBRARY.get() is not None else _LIBRARY.reason


def library() -> ctypes.CDLL:
    """The loaded library; RuntimeError (with the reason) when it is not available."""
    lib = None if _turned_off() else _LIBRARY.get()
    if lib is None:
        raise RuntimeError(f"hybridc's CPU kernels are not available here: {unavailable_reason()}")
    return lib


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
    """The path of the built library, compiling it if this machine has not yet."""
    cc = compiler()
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), cc.encode(), " ".join(_FLAGS).encode(),
                                     platform.machine().encode(), _cpu_features().encode()])).hexdigest()[:16]
    target = cache_dir() / f"{SOURCE.stem}-{key}.so"
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
    signatures = {"scan_fwd": [i64] * 5 + [ptr] * 9, "scan_bwd": [i64] * 5 + [ptr] * 14,
                  "conv_fwd": [i64] * 5 + [ptr] * 4, "conv_bwd": [i64] * 5 + [ptr] * 7}
    for name, args in signatures.items():
        for suffix in ("f32", "f64"):
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes, fn.restype = args + [i32], i32
    lib.scan_group_width.restype = lib.conv_max_kernel.restype = i32
    return lib


def ptr(x: torch.Tensor | None) -> int | None:
    """A tensor's data pointer for a kernel argument (None for an absent optional tensor)."""
    return None if x is None else x.data_ptr()


def call(name: str, dtype: torch.dtype, *args) -> None:
    """Run kernel ``name`` (``scan_fwd``, ...) for ``dtype`` (float32 or float64) on torch's thread count."""
    fn = getattr(library(), f"{name}_{'f64' if dtype == torch.float64 else 'f32'}")
    status = fn(*args, torch.get_num_threads())
    if status != 0:
        raise RuntimeError(f"hybridc's {name} kernel {_ERRORS.get(status, f'failed ({status})')}")
