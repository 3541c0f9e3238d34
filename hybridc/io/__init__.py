"""Small file helpers: reading a file that must be a regular one, and writes of a user's file (a spec, a graph)
that never leave a half-written file behind. The directories hybridc writes itself (runs, saved models,
exports) go through ``hybridc.io.guarded_dir``."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from typing import BinaryIO
from pathlib import Path

from ..errors import PathRefused


class NotRegularFile(OSError):
    """A path hybridc reads is a FIFO, a device, a socket or a directory, not a regular file."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def mode_kind(mode: int) -> str:
    """What a file of ``mode`` (from ``stat``) is, for messages: "a regular file", "a FIFO", "a directory", ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def not_regular(path: str | Path) -> str | None:
    """What stands at ``path`` (links followed) when it exists but is no regular file ("a FIFO, not a regular
    file"); None when it is one or nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else f"{mode_kind(mode)}, not a regular file"


def open_regular(path: str | Path, *, follow_links: bool = True) -> BinaryIO:
    """``path`` opened for reading in binary mode if it is a regular file. Opened without blocking (a FIFO
    put where a file belongs cannot hang the reader) and checked once open (a swap in between cannot slip
    past); ``follow_links=False`` also refuses a symbolic link (ELOOP). ``NotRegularFile`` (an ``OSError``
    whose ``strerror`` says what the path is) for anything but a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, f"{mode_kind(mode)}, not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular(path: str | Path, limit: int | None = None, *, follow_links: bool = True) -> bytes:
    """The bytes of the regular file ``path`` (``open_regular``); at most ``limit + 1`` bytes are read when
    ``limit`` is given, so the caller can tell a file over its limit without reading all of it."""
    with open_regular(path, follow_links=follow_links) as f:
        return f.read() if limit is None else f.read(limit + 1)


def read_regular_text(path: str | Path, *, follow_links: bool = True) -> str:
    """``read_regular`` decoded as UTF-8 (``UnicodeDecodeError``, a ``ValueError``, when it is not)."""
    return read_regular(path, follow_links=follow_links).decode("utf-8")


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
        info = path.stat()
    except OSError:
        mode = 0o666 & ~process_umask()
    else:
        if not stat.S_ISREG(info.st_mode):  # (renaming over a directory fails; over a FIFO it would replace it)
            raise PathRefused(f"{path} is {mode_kind(info.st_mode)}; hybridc writes a file there", "move it away, then run again (hybridc never "
                              "replaces what it did not create)")
        mode = info.st_mode & 0o7777
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
