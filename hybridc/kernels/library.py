"""hybridc's CPU kernels (``mamba_kernels.c``): built with the system C compiler on first use, loaded
with ctypes.

The C file is compiled once per machine (``$CC``, else ``cc``, ``gcc`` or ``clang``; ``-O3
-march=native -fno-trapping-math -fopenmp``: the third lets the loops with clamps and selects vectorize)
into ``$HYBRIDC_KERNEL_CACHE`` (default ``$XDG_CACHE_HOME/hybridc/kernels``, i.e. ``~/.cache/hybridc/kernels``), named by a hash of the source, the compiler, the flags and the CPU's
features, and written atomically (a half-written file is never loaded; two processes building at once
each write their own temporary file). The library links the process's OpenMP runtime: torch's own
``libgomp.so.1`` is already loaded and is the one used, so the kernels and torch share one thread pool;
each call runs on ``torch.get_num_threads()`` threads. When no compiler works, ``available()`` is False
and ``unavailable_reason()`` says why (callers then use their PyTorch paths; a RuntimeWarning says so
once per process). ``HYBRIDC_FUSED_SCAN=0``
turns the kernels off.

ctypes releases the GIL for the duration of each call. The kernels are called from PyTorch custom operators
(``hybridc.kernels.fused_scan``, ``hybridc.kernels.fused_conv``, and for decoding ``hybridc.kernels.mamba_step`` and
``hybridc.kernels.decode_path``: ``torch.library``), which torch.compile and torch.export trace through their fake
implementations; only the operators' eager implementations reach raw data pointers (a decode step calls them
directly outside compilation: the dispatcher's round trip costs as much as a one-token kernel).

The cache is input another user may have placed, so a library is loaded only from a directory this user
owns and no one else can write (else: a warning, and a private temporary directory for this process), only
if it is a regular file (never a link, a FIFO or a device: no open of it can hang), and only if its bytes
have the SHA-256 recorded beside it when it was built (``<library>.sha256``). A damaged or unrecorded
library is rebuilt and replaced atomically; one without the expected symbols is refused the same way.
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

from ..io import read_regular

SOURCE = Path(__file__).with_name("mamba_kernels.c")
_FLAGS = ("-O3", "-march=native", "-fno-trapping-math", "-fopenmp", "-fPIC", "-shared", "-std=c11")
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
                    self.lib = _load(build())
                except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                    self.reason = str(error)
                    warnings.warn(f"hybridc's CPU kernels are unavailable, Mamba runs the slower PyTorch scan: "
                                  f"{self.reason}", RuntimeWarning, stacklevel=2)
            return self.lib


_LIBRARY = _Library()


def _turned_off() -> bool:
    return os.environ.get("HYBRIDC_FUSED_SCAN", "1") == "0"


@torch.compiler.assume_constant_result
def available() -> bool:
    """Whether the kernels run here (building them on first call); False when HYBRIDC_FUSED_SCAN=0. (A constant
    to torch.compile, which calls it once, outside the graph.)"""
    return not _turned_off() and _LIBRARY.get() is not None


@torch.compiler.assume_constant_result
def conv_max_kernel() -> int:
    """The longest convolution kernel the fused conv takes (RuntimeError when the kernels are unavailable)."""
    return library().conv_max_kernel()


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
    """Where built kernels are kept (as configured; ``trusted_cache_dir`` says whether it may be used)."""
    if os.environ.get("HYBRIDC_KERNEL_CACHE"):
        return Path(os.environ["HYBRIDC_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hybridc" / "kernels"


def untrusted(directory: Path) -> str | None:
    """Why a library in ``directory`` could be someone else's (None: only this user can have put it there):
    not a real directory (a link, a file), owned by another user, or writable by group or others."""
    import stat

    try:
        info = os.lstat(directory)
    except OSError as error:
        return f"{directory} cannot be read ({error.strerror or error})"
    if not stat.S_ISDIR(info.st_mode):
        return f"{directory} is not a directory (a link or a file)"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"{directory} belongs to another user (uid {info.st_uid})"
    if info.st_mode & 0o022:
        return f"{directory} is writable by {'group and others' if info.st_mode & 0o002 else 'its group'}"
    return None


_PRIVATE: list[Path] = []  # this process's fallback directory, made at most once


def trusted_cache_dir() -> Path:
    """The cache directory, created (0700) if missing; a private temporary one for this process, with a
    warning, when the configured one could be someone else's (``untrusted``)."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.environ.get("HYBRIDC_KERNEL_CACHE") and not directory.is_symlink() and \
                directory.stat().st_uid == getattr(os, "getuid", lambda: -1)():
            directory.chmod(0o700)  # hybridc's own default directory (made group-writable by a umask of 002)
    except OSError:
        pass  # said below, by untrusted()
    problem = untrusted(directory)
    if problem is None:
        return directory
    if not _PRIVATE:
        warnings.warn(f"hybridc's kernel cache is not used: {problem}; building in a private temporary directory "
                      "for this process (set HYBRIDC_KERNEL_CACHE to a directory only you can write)", RuntimeWarning,
                      stacklevel=3)
        _PRIVATE.append(Path(tempfile.mkdtemp(prefix="hybridc-kernels-")))
    return _PRIVATE[0]


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
    """The path of the built library, compiling it if this machine has not yet, or if what the cache holds
    under its name is not a regular file whose bytes match their recorded digest."""
    cc = compiler()
    target = trusted_cache_dir() / library_name(cc)
    if verified(target):
        return target
    return _compile(cc, target)


def library_name(cc: str | None = None) -> str:
    """The file name of this machine's build: a hash of the source, compiler, flags and CPU features."""
    cc = cc or compiler()
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), cc.encode(), " ".join(_FLAGS).encode(),
                                     platform.machine().encode(), _cpu_features().encode()])).hexdigest()[:16]
    return f"{SOURCE.stem}-{key}.so"


def _digest_file(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _regular_bytes(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (opened without following links or blocking), else None."""
    try:
        return read_regular(path, follow_links=False)
    except OSError:
        return None


def verified(target: Path) -> bool:
    """Whether ``target`` is a regular file whose SHA-256 is the one recorded beside it at build time."""
    data, record = _regular_bytes(target), _regular_bytes(_digest_file(target))
    return data is not None and record is not None and hashlib.sha256(data).hexdigest() == record.decode(
        "ascii", "replace").strip()


def _compile(cc: str, target: Path) -> Path:
    """Compile into a fresh temporary file beside ``target``, record its digest, move both into place."""
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    digest_tmp = tmp + ".sha256"
    try:
        done = subprocess.run([cc, *_FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE.name} with {cc} failed: {done.stderr.strip()[-2000:]}")
        with open(digest_tmp, "w", encoding="ascii") as f:
            f.write(hashlib.sha256(Path(tmp).read_bytes()).hexdigest() + "\n")
        os.replace(tmp, target)  # (replaces a damaged library, or whatever non-directory was there)
        os.replace(digest_tmp, _digest_file(target))
    finally:
        for leftover in (tmp, digest_tmp):
            if os.path.lexists(leftover):
                os.unlink(leftover)
    return target


def _load(target: Path) -> ctypes.CDLL:
    """dlopen a verified library and bind its functions; a library without them is rebuilt once."""
    try:
        return _bind(ctypes.CDLL(str(target)))
    except AttributeError:  # verified bytes, but not our symbols: rebuild, then it must have them
        rebuilt = _compile(compiler(), target)
        # the loader keeps what it opened under a path by that path: load the new file under a name of its own
        fresh = rebuilt.with_name(f"{rebuilt.name}.{os.getpid()}.load")
        os.link(rebuilt, fresh)
        try:
            return _bind(ctypes.CDLL(str(fresh)))
        except AttributeError as error:
            raise RuntimeError(f"{rebuilt} lacks hybridc's kernels ({error})") from None
        finally:
            fresh.unlink()


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    signatures = {"scan_fwd": [i64] * 7 + [ptr] * 12, "scan_bwd": [i64] * 7 + [ptr] * 20,
                  "conv_fwd": [i64] * 5 + [ptr] * 4, "conv_bwd": [i64] * 5 + [ptr] * 7,
                  "step_fwd": [i64] * 7 + [ptr] * 12, "linear_fwd": [i64] * 3 + [ptr] * 4}
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
