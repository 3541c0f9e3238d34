"""The directories hybridc writes (a run directory, a model directory being saved or exported), reached from
an open descriptor one name at a time, so that nothing below them is ever followed through a link.

Guarantee. Below its root, a ``GuardedDir`` never follows a symbolic link and never reads, writes, renames or
removes through one, nor opens a FIFO, a device or a socket:

- every directory on the way to a name is opened relative to its parent's descriptor with
  ``O_NOFOLLOW | O_DIRECTORY`` (``child``), so a link or a file where a directory belongs stops the walk;
- every file is opened relative to its directory's descriptor with ``O_NOFOLLOW | O_NONBLOCK`` and checked to be
  a regular file once open (a FIFO cannot block the reader, a file swapped in after a check is still refused);
- a file it writes is created with ``O_NOFOLLOW`` (exclusively, ``O_CREAT | O_EXCL``, where it must be new: a
  temporary file, a staging directory), every rename and unlink names its directories by descriptor
  (``src_dir_fd``/``dst_dir_fd``/``dir_fd``); a replaced file is written beside its target and renamed over it,
  which replaces a link swapped in there as a name, never its target;
- ``remove_tree`` removes a directory of ours by descriptor, never descending through a link, and refuses a
  tree that holds anything but directories and regular files (a link or a FIFO put there is someone else's).

What is refused raises ``PathRefused`` (exit status 2) naming the path and what stands there, and is left as
it is; a read of a link or a FIFO raises ``NotRegularFile`` (an ``OSError``), which a caller may treat as damage
(a damaged checkpoint is skipped for an older one). The root itself is the path the caller names: links in
that path are the user's own choice of place and are followed once, when the root is opened.

Libraries that write or read by path (safetensors, ``save_pretrained``, matplotlib) are given
``library_path()``: on Linux ``/proc/self/fd/N/...``, the very directory (or file) this object holds open,
whatever has been renamed or swapped around it since; elsewhere, its path.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import PathRefused
from . import NotRegularFile, mode_kind, process_umask

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _NONBLOCK | _CLOEXEC
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC | getattr(os, "O_BINARY", 0)
_PROC_FD = Path("/proc/self/fd")
REFUSED_HINT = ("move it away, then run again (hybridc neither follows nor replaces what it did not create, and "
                "writes a run only into directories and files of its own)")


def _parts(name: str) -> list[str]:
    """``a/b/c`` as its names; "" or "." is the directory itself. Absolute paths, ``..`` and empty parts are
    programming errors (names below a guarded directory are hybridc's own)."""
    if name in ("", "."):
        return []
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a relative name below a directory: {name!r}")
    return parts


def describe(mode: int) -> str:
    """What an entry of ``mode`` (from ``lstat``) is, for messages: "a symbolic link", "a FIFO", ..."""
    return mode_kind(mode)


class GuardedDir:
    """An open directory and the operations hybridc performs below it (see the module's guarantee). ``path``
    is for messages only: nothing is looked up through it after the root is opened. Close it (or use it as a
    context manager) when done; ``child`` opens new ones, each to be closed too."""

    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.path = Path(path)

    # ---- opening --------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, create: bool = False) -> "GuardedDir":
        """The directory ``path`` (the user's path: its links are followed), made with its parents when
        ``create``. ``PathRefused`` when it is not a directory; ``FileNotFoundError`` when it is absent."""
        path = Path(path)
        if create:
            try:
                os.makedirs(path, exist_ok=True)
            except FileExistsError:  # a file, a FIFO or a dangling link there: said below
                pass
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NONBLOCK | _CLOEXEC)
        except (NotADirectoryError, FileNotFoundError) as err:
            if isinstance(err, FileNotFoundError) and not os.path.lexists(path):
                raise
            raise PathRefused(f"{path} is {_kind_at(path)}, not a directory",
                              "choose another directory (hybridc never writes over what it did not create)") from None
        return cls(fd, path)

    def child(self, name: str, *, create: bool = False) -> "GuardedDir":
        """The directory ``name`` below this one (``a/b`` walks ``a``, then ``b``), each step opened without
        following a link; missing steps are made when ``create``. ``PathRefused`` when a step is a link or
        not a directory; ``FileNotFoundError`` when one is absent."""
        current = GuardedDir(os.dup(self.fd), self.path)
        try:
            for part in _parts(name):
                step = current._open_directory(part, create)
                current.close()
                current = step
        except BaseException:
            current.close()
            raise
        return current

    def _open_directory(self, name: str, create: bool) -> "GuardedDir":
        if create:
            try:
                os.mkdir(name, 0o777, dir_fd=self.fd)
            except FileExistsError:
                pass
        try:
            fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(self.path / name)) from None
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise self.refused(name, "a directory") from None
            raise
        return GuardedDir(fd, self.path / name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "GuardedDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GuardedDir({str(self.path)!r})"

    @contextmanager
    def _parent_of(self, name: str) -> Iterator[tuple["GuardedDir", str]]:
        """(the directory holding ``name``, its last part), the directory opened as ``child`` opens it."""
        parts = _parts(name)
        if not parts:
            raise ValueError("a name below the directory is needed")
        with self.child("/".join(parts[:-1])) as parent:
            yield parent, parts[-1]

    # ---- looking -------------------------------------------------------------------------------
    def lstat(self, name: str) -> os.stat_result | None:
        """``name``'s own status (a link is a link), None when it or a directory on its way is absent;
        ``PathRefused`` when a directory on its way is a link or not a directory."""
        try:
            with self._parent_of(name) as (parent, last):
                return os.stat(last, dir_fd=parent.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def kind(self, name: str) -> str | None:
        """What stands at ``name`` ("a regular file", "a directory", "a symbolic link", ...), None if nothing."""
        info = self.lstat(name)
        return None if info is None else describe(info.st_mode)

    def is_dir(self, name: str) -> bool:
        """``name`` is a real directory (not a link to one)."""
        info = self.lstat(name)
        return info is not None and stat.S_ISDIR(info.st_mode)

    def is_file(self, name: str) -> bool:
        """``name`` is a regular file (not a link to one)."""
        info = self.lstat(name)
        return info is not None and stat.S_ISREG(info.st_mode)

    def exists(self, name: str) -> bool:
        return self.lstat(name) is not None

    def names(self) -> list[str]:
        """The entries of this directory, sorted."""
        return sorted(os.listdir(self.fd))

    def refused(self, name: str, wanted: str, what: str | None = None) -> PathRefused:
        """``PathRefused`` for ``name``, which is not ``wanted`` ("a directory", "a file")."""
        if what is None:
            info = self.lstat(name)
            what = "missing" if info is None else describe(info.st_mode)
        shown = self.path / name
        if what == "a symbolic link":
            return PathRefused(f"{shown} is a symbolic link; hybridc does not follow it", REFUSED_HINT)
        return PathRefused(f"{shown} is {what}, not {wanted}", REFUSED_HINT)

    def foreign_entries(self, files: Iterable[str] = (), directories: Iterable[str] = (),
                        trees: Iterable[str] = ()) -> list[str]:
        """What stands where hybridc writes but is not what it would have written, each said as ``NAME is
        WHAT``: something other than a regular file at one of ``files``, other than a real directory at one of
        ``directories`` or ``trees``, and anything but directories and regular files anywhere inside ``trees``
        (directories hybridc replaces or removes whole). Absent names are fine; below a name found wrong,
        nothing more is said."""
        found: list[str] = []
        bad: list[str] = []
        wanted = [(n, "a file") for n in files] + [(n, "a directory") for n in (*directories, *trees)]
        for name, kind in sorted(wanted, key=lambda item: item[0].count("/")):
            if any(name == b or name.startswith(b + "/") for b in bad):
                continue
            try:
                info = self.lstat(name)
            except PathRefused:  # (a directory on the way, already named)
                continue
            if info is None:
                continue
            ok = stat.S_ISREG(info.st_mode) if kind == "a file" else stat.S_ISDIR(info.st_mode)
            if not ok:
                found.append(f"{name} is {describe(info.st_mode)}" + ("" if stat.S_ISLNK(info.st_mode) else
                                                                       f", not {kind}"))
                bad.append(name)
        for tree in trees:
            if tree in bad or any(tree.startswith(b + "/") for b in bad) or not self.is_dir(tree):
                continue
            with self.child(tree) as top:
                found.extend(f"{tree}/{entry}" for entry in top._foreign_inside())
        return found

    def _foreign_inside(self, prefix: str = "") -> list[str]:
        """Entries below this directory that are neither directories nor regular files, as ``a/b is WHAT``."""
        found = []
        for name in self.names():
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                try:
                    with self._open_directory(name, create=False) as sub:
                        found.extend(sub._foreign_inside(f"{prefix}{name}/"))
                except (PathRefused, FileNotFoundError):  # swapped while we looked
                    found.append(f"{prefix}{name} is not a directory any more")
            elif not stat.S_ISREG(info.st_mode):
                found.append(f"{prefix}{name} is {describe(info.st_mode)}")
        return found

    # ---- reading -------------------------------------------------------------------------------
    def open_read(self, name: str) -> BinaryIO:
        """``name`` opened for reading if it is a regular file: ``NotRegularFile`` (an ``OSError``) for a link
        (errno ``ELOOP``), a FIFO, a device, a socket or a directory; ``FileNotFoundError`` when absent."""
        with self._parent_of(name) as (parent, last):
            try:
                fd = os.open(last, _READ_FLAGS, dir_fd=parent.fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.EMLINK):  # (O_NOFOLLOW on a link: ELOOP; EMLINK on BSDs)
                    raise NotRegularFile(errno.ELOOP, "a symbolic link, not a regular file",
                                         str(parent.path / last)) from None
                raise
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise NotRegularFile(errno.EINVAL, f"{describe(mode)}, not a regular file", str(self.path / name))
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    def read_bytes(self, name: str, limit: int | None = None) -> bytes:
        """The bytes of regular file ``name`` (``open_read``); at most ``limit + 1`` when ``limit`` is given."""
        with self.open_read(name) as f:
            return f.read() if limit is None else f.read(limit + 1)

    def read_text(self, name: str) -> str:
        """``read_bytes`` decoded as UTF-8 (``UnicodeDecodeError``, a ``ValueError``, when it is not)."""
        return self.read_bytes(name).decode("utf-8")

    @contextmanager
    def opened_path(self, name: str) -> Iterator[str]:
        """A path a library can open for reading regular file ``name`` by: on Linux ``/proc/self/fd/N`` of the
        file opened here (the same file, whatever happens to its name meanwhile); else its path, once checked."""
        with self.open_read(name) as f:
            proc = _PROC_FD / str(f.fileno())
            yield str(proc) if _PROC_FD.is_dir() else str(self.path / name)

    # ---- writing -------------------------------------------------------------------------------
    def library_path(self, name: str = "") -> str:
        """A path for a library that writes files into this directory (``save_pretrained``, safetensors):
        on Linux ``/proc/self/fd/N[/name]``, this very directory; elsewhere its path. ``name`` must be a file
        the library creates (a link already there would be followed by the library: check before)."""
        base = _PROC_FD / str(self.fd)
        root = base if base.is_dir() else self.path
        return str(root / name) if name else str(root)

    def _writable_target(self, name: str) -> os.stat_result | None:
        """The status of ``name`` when it is a regular file (None when absent); ``PathRefused`` otherwise."""
        info = self.lstat(name)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise self.refused(name, "a file", describe(info.st_mode))
        return info

    def create(self, name: str, mode: int = 0o666) -> BinaryIO:
        """A new file ``name`` opened for writing: created exclusively, never through a link (``FileExistsError``
        when the name is taken). Its mode is ``mode`` less the umask."""
        with self._parent_of(name) as (parent, last):
            fd = os.open(last, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode, dir_fd=parent.fd)
        return os.fdopen(fd, "wb")

    def write_bytes(self, name: str, data: bytes) -> None:
        """Replace (or create) regular file ``name`` with ``data`` atomically: written to a new file beside it,
        fsynced, then renamed over it. A new file gets the mode any new file gets (0666 less the umask), a
        replaced one keeps its mode. ``PathRefused`` when ``name`` is a link, a directory, a FIFO, ..."""
        with self._parent_of(name) as (parent, last):
            info = parent._writable_target(last)
            for _ in range(100):
                temporary = f".{last}.{secrets.token_hex(4)}.tmp"
                try:
                    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666,
                                 dir_fd=parent.fd)
                    break
                except FileExistsError:
                    continue
            else:  # pragma: no cover - 100 random names taken
                raise FileExistsError(errno.EEXIST, "no free temporary name", str(parent.path / last))
            try:
                if info is not None:
                    os.fchmod(fd, stat.S_IMODE(info.st_mode))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temporary, last, src_dir_fd=parent.fd, dst_dir_fd=parent.fd)
            except BaseException:
                try:
                    os.unlink(temporary, dir_fd=parent.fd)
                except OSError:
                    pass
                raise

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode("utf-8"))

    def append_text(self, name: str, text: str) -> None:
        """Append ``text`` to regular file ``name`` (created when absent), flushed. ``PathRefused`` for a link, a
        FIFO, a directory, ..."""
        with self._parent_of(name) as (parent, last):
            try:
                fd = os.open(last, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o666,
                             dir_fd=parent.fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EMLINK, errno.ENOTDIR):
                    raise parent.refused(last, "a file") from None
                raise
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise parent.refused(last, "a file", describe(os.fstat(fd).st_mode))
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()

    def open_raw(self, name: str, flags: int, mode: int = 0o666) -> int:
        """``os.open`` of ``name`` here with ``flags`` and ``O_NOFOLLOW``: a descriptor (the caller checks
        what it opened, e.g. a lock file)."""
        with self._parent_of(name) as (parent, last):
            return os.open(last, flags | _NOFOLLOW | _CLOEXEC, mode, dir_fd=parent.fd)

    def set_mode(self, name: str, mode: int) -> None:
        """chmod of regular file ``name``, opened without following a link."""
        with self.open_read(name) as f:
            os.fchmod(f.fileno(), mode)

    def give_umask_mode(self, *names: str) -> None:
        """Files just written by a library that creates them 0600 (safetensors does) get the mode a new file
        gets: 0666 less the umask."""
        mode = 0o666 & ~process_umask()
        for name in names:
            self.set_mode(name, mode)

    def fsync(self, name: str = "") -> None:
        """fsync this directory, or regular file ``name`` in it."""
        if not name:
            os.fsync(self.fd)
            return
        with self.open_read(name) as f:
            os.fsync(f.fileno())

    def mkdir(self, name: str, mode: int = 0o777) -> None:
        """Make directory ``name`` (its parents must exist); ``FileExistsError`` when the name is taken."""
        with self._parent_of(name) as (parent, last):
            os.mkdir(last, mode, dir_fd=parent.fd)

    def make_temp_dir(self, prefix: str, suffix: str = ".tmp") -> str:
        """A new, empty directory here named ``<prefix><random><suffix>``, mode 0700 while it is built (created
        exclusively: never an existing name, never through a link); its name."""
        for _ in range(100):
            name = f"{prefix}{secrets.token_hex(4)}{suffix}"
            _parts(name)
            try:
                os.mkdir(name, 0o700, dir_fd=self.fd)
                return name
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(self.path / prefix))  # pragma: no cover

    # ---- renaming and removing -------------------------------------------------------------------------
    def rename(self, src: str, dst: str, *, into: "GuardedDir | None" = None) -> None:
        """Rename entry ``src`` of this directory to ``dst`` of ``into`` (default: this one), by descriptors.
        The entry moves as itself (a link stays a link, unfollowed); an existing ``dst`` is replaced as rename
        does (a file, an empty directory): callers check it first."""
        target = into if into is not None else self
        with self._parent_of(src) as (a, a_last), target._parent_of(dst) as (b, b_last):
            os.rename(a_last, b_last, src_dir_fd=a.fd, dst_dir_fd=b.fd)

    def remove_file(self, name: str) -> bool:
        """Unlink regular file ``name`` (True), or nothing when it is absent (False); anything else there (a
        link, a FIFO, a directory) is not ours: ``PathRefused``, left as it is."""
        with self._parent_of(name) as (parent, last):
            info = parent.lstat(last)
            if info is None:
                return False
            if not stat.S_ISREG(info.st_mode):
                raise parent.refused(last, "a file", describe(info.st_mode))
            os.unlink(last, dir_fd=parent.fd)
            return True

    def remove_tree(self, name: str) -> bool:
        """Remove directory ``name`` and everything in it (True), or nothing when it is absent (False). Only a
        directory of ours is removed: ``name`` a link or not a directory, or a tree that holds anything but
        directories and regular files (a link, a FIFO), is refused (``PathRefused``) and nothing is removed.
        The removal walks descriptors and never descends through a link (one swapped in meanwhile is unlinked
        as a name, its target untouched)."""
        with self._parent_of(name) as (parent, last):
            info = parent.lstat(last)
            if info is None:
                return False
            if not stat.S_ISDIR(info.st_mode):
                raise parent.refused(last, "a directory", describe(info.st_mode))
            with parent._open_directory(last, create=False) as top:
                foreign = top._foreign_inside()
                if foreign:
                    raise PathRefused(f"{parent.path / last} holds what hybridc did not write ({foreign[0]}"
                                      + (f", and {len(foreign) - 1} more" if len(foreign) > 1 else "") + "): it "
                                      "is not removed", REFUSED_HINT)
                top._remove_contents()
            os.rmdir(last, dir_fd=parent.fd)
            return True

    def _remove_contents(self) -> None:
        for name in self.names():
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                with self._open_directory(name, create=False) as sub:
                    sub._remove_contents()
                os.rmdir(name, dir_fd=self.fd)
            else:
                os.unlink(name, dir_fd=self.fd)

    def install(self, staged: str, target: str, check=None) -> None:
        """Move directory ``staged`` (from ``make_temp_dir``) to ``target`` here, giving it the mode a new
        directory gets (0777 less the umask). A ``target`` that does not exist or is an empty directory is
        taken at once (rename replaces an empty directory atomically and fails on one that is not). A
        directory that is not empty is replaced only if ``check`` (given the directory as a ``GuardedDir``)
        accepts it -- ``check`` raises otherwise: it is the caller's test that the directory is its own earlier
        output; it is moved aside into a fresh directory, checked again there, and removed once ``staged`` is in
        place (moved back if that fails). A link or a non-directory at ``target`` is refused (``PathRefused``)
        and left as it is."""
        info = self.lstat(target)
        if info is not None and not stat.S_ISDIR(info.st_mode):
            raise self.refused(target, "a directory", describe(info.st_mode))
        if info is not None and check is not None:
            with self.child(target) as existing:
                check(existing)
                if foreign := existing._foreign_inside():  # (removed whole once replaced: ours only)
                    raise PathRefused(f"{self.path / target} holds what hybridc did not write ({foreign[0]}): it is "
                                      "not replaced", "choose another output path, or move it away")
        with self.child(staged) as built:
            os.fchmod(built.fd, 0o777 & ~process_umask())
        try:
            self.rename(staged, target)  # a new name, or an empty directory
            return
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise
            if err.errno in (errno.ENOTDIR, errno.EISDIR):  # swapped for a file or a link since the check
                raise self.refused(target, "a directory") from None
        if check is None:
            raise PathRefused(f"{self.path / target} is a directory that is not empty",
                              "choose another output path (hybridc never replaces files it did not create)")
        aside = self.make_temp_dir(f".{target}.", ".old")
        try:
            with self.child(aside) as holder:
                self.rename(target, "old", into=holder)  # (a link or file put there since moves as itself)
                try:
                    with holder.child("old") as moved:
                        check(moved)
                    self.rename(staged, target)
                except BaseException:
                    holder.rename("old", target, into=self)  # what was there is put back as it was
                    raise
        except BaseException:
            self.remove_tree(aside)
            raise
        self.remove_tree(aside)  # the earlier output, accepted by check


def _kind_at(path: Path) -> str:
    try:
        return describe(os.lstat(path).st_mode)
    except OSError:
        return "missing"


@contextmanager
def guarded(where: "GuardedDir | str | Path") -> Iterator[GuardedDir]:
    """``where`` as a ``GuardedDir``: itself (left open), or a path opened as a root for the block."""
    if isinstance(where, GuardedDir):
        yield where
        return
    with GuardedDir.open(where) as opened:
        yield opened
