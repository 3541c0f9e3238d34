"""Small file helpers: writes that never leave a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def process_umask() -> int:
    """The process's file-mode creation mask (read without changing it, from /proc where there is one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic swap (not thread-safe, but brief)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, fsync it, then rename it over ``path``.
    A new file gets the mode any new file gets (0666 less the umask), not mkstemp's 0600; a file that
    is replaced keeps its mode; a symlink stays a symlink (its target is what is rewritten)."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~process_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def give_umask_mode(*paths: str | Path) -> None:
    """Set files just written by a library that creates them 0600 (safetensors does) to the mode a new
    file gets: 0666 less the umask."""
    mode = 0o666 & ~process_umask()
    for path in paths:
        os.chmod(path, mode)
