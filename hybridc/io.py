"""Small file helpers: writes that never leave a half-written file behind, and directories staged in a
fresh place of their own before they are moved where they belong."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from typing import BinaryIO
from pathlib import Path

from .errors import RunError


class PathRefused(RunError):
    """hybridc will not write to, through or over a path it did not create (a user's file, directory or
    symbolic link where it was asked to write): the user chooses another path. Exit status 2."""

    exit_code = 2


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


def fresh_staging_dir(target: str | Path) -> Path:
    """A new, empty directory beside ``target`` to build it in: created exclusively (``mkdtemp``: never
    an existing path, never through a symbolic link, mode 0700 while it is built), named
    ``.<target name>.<random>.tmp``. Missing parents of ``target`` are created. The caller removes it
    if building fails (it is the caller's own); ``install_directory`` moves it into place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))


def refuse_unless_directory(path: str | Path, what: str = "the output") -> None:
    """``path`` is absent or a real directory: a symbolic link (even to a directory) or anything that is
    not a directory is refused, untouched."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise PathRefused(f"{path} is a symbolic link; hybridc does not write {what} through it",
                          "choose another output path (hybridc writes only to a new directory or over its "
                          "own earlier output, and never follows or removes a link)")
    if not stat.S_ISDIR(mode):
        raise PathRefused(f"{path} exists and is not a directory; hybridc does not write {what} over it",
                          "choose another output path (hybridc never replaces files it did not create)")


def install_directory(staged: str | Path, target: str | Path,
                      check: Callable[[Path], None] | None = None) -> Path:
    """Move the directory ``staged`` (from ``fresh_staging_dir``) to ``target``, giving it the mode a new
    directory gets (0777 less the umask). A ``target`` that does not exist or is an empty directory is
    taken at once (rename replaces an empty directory atomically, and fails on one that is not empty). A
    directory that is not empty is replaced only if ``check`` accepts it (``check`` raises otherwise: it
    is the caller's test that the directory is its own earlier output); it is moved aside into a fresh
    directory, checked again there, and removed once ``staged`` is in place (moved back if that fails).
    A symbolic link or a non-directory at ``target`` is refused (``PathRefused``) and left as it is."""
    staged, target = Path(staged), Path(target)
    refuse_unless_directory(target)
    if check is not None:
        check(target)
    os.chmod(staged, 0o777 & ~process_umask())
    try:
        os.rename(staged, target)  # a new path, or an empty directory
        return target
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if check is None:
        raise PathRefused(f"{target} is a directory that is not empty",
                          "choose another output path (hybridc never replaces files it did not create)")
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    moved = aside / "old"
    try:
        os.rename(target, moved)  # (a link or file put there since the check moves as itself: checked next)
    except BaseException:
        os.rmdir(aside)
        raise
    try:
        refuse_unless_directory(moved)
        check(moved)
        os.rename(staged, target)
    except BaseException:
        os.rename(moved, target)  # what was there is put back as it was
        os.rmdir(aside)
        raise
    shutil.rmtree(aside)  # the earlier output, accepted by check
    return target
