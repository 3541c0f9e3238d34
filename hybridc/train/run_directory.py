"""The run directory of a ``Run``: made or reopened (never through a link; a baseline's below its parent run),
checked before anything is written (a spec's checkpoints are its own), its process lock taken and released, and
a directory the run created forgotten when nothing was trained in it. Mixed into ``hybridc.train.run.Run``."""

from __future__ import annotations

import os
import stat


from ..errors import PathRefused, RunError
from ..io.guarded_dir import GuardedDir
from ..spec.emit import dump_yaml, spec_to_data
from ..spec.frontend import lock_data
from .checkpoint import checkpoint_spec_digest
from .metrics import MetricsLog
from .rundir import (CHECKPOINTS, FRESH_FILES, LOCK_FILE, check_run_directory, checkpoint_dirs_of, is_lock_text,
                     lock_refusal, lock_refused)


class RunDirectory:
    """The directory and process lock of a run."""

    def prepare_directory(self) -> None:
        try:
            if self.main:
                self._prepare_directory()
        finally:
            self.accelerator.wait_for_everyone()
        if self.dir is None:  # the other processes read the run (checkpoints) through it too
            try:
                self.dir = self.open_directory(create=False)
            except FileNotFoundError:
                raise RunError(f"{self.run_dir} was not made by the main process", "see the main process's "
                               "error (rank 0)") from None
        self.metrics = MetricsLog(self.dir, enabled=self.main)

    def open_directory(self, create: bool) -> GuardedDir:
        """The run directory, opened (and made, with ``create``): the user's path, or a baseline's below its
        parent run's directory (never through a link)."""
        if self.within is not None:
            return self.within.child(self.run_dir.name, create=create)
        return GuardedDir.open(self.run_dir, create=create)

    def _prepare_directory(self) -> None:
        lock = lock_data(self.rs)
        if self.within is not None:
            existed = self.within.exists(self.run_dir.name)
        else:
            existed = os.path.lexists(self.run_dir)
        self.dir = run = self.open_directory(create=True)
        d = run.path
        check_run_directory(run, lock, self.options.resume)
        occupied = any(name != LOCK_FILE for name in run.names())
        if occupied:
            for path in checkpoint_dirs_of(run):  # each says which spec it was trained for: checked before any write
                with run.child(f"{CHECKPOINTS}/{path.name}") as checkpoint:
                    digest = checkpoint_spec_digest(checkpoint)
                if digest is not None and digest != self.spec_digest:
                    raise RunError(f"checkpoint {path.name} in {d} was written for another spec than this one",
                                   "resume with the spec the run started with (its spec.yaml), or start a new "
                                   "run with -o")
        self._fresh = not occupied
        self._created = not existed
        self.take_lock()  # before anything is written
        run.child("plots", create=True).close()
        self.compiled.write(run)  # spec.lock.yaml first: it is what marks the directory as a run
        run.write_text("spec.yaml", self.rs.text or dump_yaml(spec_to_data(self.spec)))
        if self.parallel.world > 1:  # the plan as it runs: global batches over every process
            from ..graph.plan import lower_plan

            run.write_text("plan.json", lower_plan(self.rs, self.compiled.graph, self.parallel.world).to_json())

    def forget_if_nothing_trained(self) -> None:
        """A new run that failed before its first checkpoint (bad data, weights that do not load) leaves
        nothing behind that would block a rerun: the files it wrote are removed (a resumed run's never)."""
        run = self.dir
        if not (self.main and self._fresh and self._lock is not None and run is not None) or checkpoint_dirs_of(run):
            return  # (only the process that holds the run removes what it wrote)
        for name in FRESH_FILES:  # (a link or a FIFO put there is not ours: left as it is)
            try:
                if run.is_dir(name):
                    run.remove_tree(name)
                elif run.is_file(name):
                    run.remove_file(name)
            except (OSError, PathRefused):
                pass
        self.remove_own_lock()
        if self._created and not run.names():
            try:
                if self.within is not None:
                    os.rmdir(self.run_dir.name, dir_fd=self.within.fd)
                else:
                    os.rmdir(self.run_dir)  # (only an empty directory; never a link)
            except OSError:
                pass

    def take_lock(self) -> None:
        """Only one hybridc process trains a run directory at a time: an advisory lock on RUN/.lock, held
        until the run ends (the system drops it if the process dies, even by kill -9). The file is created
        exclusively, or an existing one opened without following a link; one hybridc did not write (a
        user's file, a symbolic link, a directory, ...) is refused as it is: never truncated, written
        through or removed."""
        import fcntl

        run = self.dir
        path = run.path / LOCK_FILE
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        created = True
        try:
            fd = run.open_raw(LOCK_FILE, flags | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            created = False
            try:
                fd = run.open_raw(LOCK_FILE, flags)  # (a symbolic link: ELOOP; a directory: EISDIR)
            except OSError as err:
                raise (lock_refusal(run)
                       or lock_refused(path, f"a file hybridc cannot open ({err.strerror})")) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise lock_refusal(run) or lock_refused(path, "not a regular file")
        handle = os.fdopen(fd, "r+", encoding="ascii", errors="replace")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            text = handle.read(64)
            holder = text.strip() if text.strip() and is_lock_text(text) else "another process"
            handle.close()
            raise RunError(f"{self.run_dir} is being trained by {holder} right now",
                           "wait for it to finish (or stop it), then --resume") from None
        if not created and not is_lock_text(handle.read(64)):  # (read once we hold it: not changing)
            handle.close()
            raise self.lock_refused(path, "a file hybridc did not write")
        handle.seek(0)
        handle.truncate()
        handle.write(f"hybridc process {os.getpid()}\n")
        handle.flush()
        self._lock = handle
        self._lock_created = created

    def remove_own_lock(self) -> None:
        """Remove RUN/.lock if this process created it and it is still the file this process holds."""
        if self._lock is None or not self._lock_created or self.dir is None:
            return
        try:
            mine, there = os.fstat(self._lock.fileno()), self.dir.lstat(LOCK_FILE)
            if there is not None and (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                os.unlink(LOCK_FILE, dir_fd=self.dir.fd)
        except OSError:
            pass
