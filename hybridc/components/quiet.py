"""The library messages hybridc's users are not shown: a short list of exact messages, each dropped where it
arises (torch-free; every other message of every library still reaches the user).

- transformers' ```selective_state_update` is falling back to its reference PyTorch implementation because
  `mamba_ssm` is not installed. This is correct but much slower; install `mamba_ssm` ...`` (and the same for
  ``causal_conv1d``'s functions), logged by ``transformers.integrations.hub_kernels`` the first time a Mamba
  or Mamba-2 layer of transformers runs one of them (a hybrid's decode step, a client's ``generate``).
  hybridc runs Mamba's scan and convolution with its own CPU kernels, and mamba-ssm and causal-conv1d
  cannot be installed without CUDA: the advice is wrong for a hybrid on a CPU. Dropped by a logging filter on
  that logger when no CUDA device is there (``install``: when hybridc's torch side is imported).
- PyTorch DDP's ``find_unused_parameters=True was specified in DDP constructor, but did not find any unused
  parameters in the forward pass ...``, printed by its C++ reducer once per process during a forward.
  hybridc asks DDP for the search because a hybrid may leave parameters without gradients in a step (a
  branch of constant weight 0, experts no token was routed to); a stage that leaves none pays an extra
  graph traversal, which the user cannot act on. Dropped from the process's stderr (file descriptor 2,
  where C++ writes) while a data-parallel forward runs, until it has been seen (``without_on_stderr``).
- git's ``fatal: not a git repository``, printed when lm-eval asks ``git describe`` for the commit of the
  working directory (to record it with its results); lm-eval then records none. Dropped from stderr while
  that one call runs (``quiet_lm_eval_git``).

Besides, where hybridc shows its own progress for some work (loading, saving), transformers' progress bars
for the same work are off (``transformers_bars_off``, ``for_command``), and what families log while hybridc
measures them on the meta device is not shown (``measuring``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

KERNEL_FALLBACK_LOGGER = "transformers.integrations.hub_kernels"
KERNEL_FALLBACK = re.compile(r"^`\w+` is falling back to its reference PyTorch implementation because "
                             r"`(causal_conv1d|mamba_ssm)` is not installed\. ")
DDP_UNUSED = re.compile(rb"Warning: find_unused_parameters=True was specified in DDP constructor, but did not find any "
                        rb"unused parameters in the forward pass\.")
NOT_A_GIT_REPOSITORY = re.compile(rb"^fatal: not a git repository")


class _DropMessages(logging.Filter):
    """Drops the records of one logger whose message matches ``pattern``."""

    def __init__(self, pattern: re.Pattern[str]):
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not self.pattern.search(record.getMessage()) or _cuda()
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not ours to judge
            return True


def _cuda() -> bool:
    """A CUDA device is there (torch already imported): mamba-ssm and causal-conv1d would run, so transformers'
    advice to install them concerns the user."""
    torch = sys.modules.get("torch")
    try:
        return bool(torch is not None and torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA setup: no kernels either
        return False


@contextlib.contextmanager
def transformers_bars_off() -> Iterator[None]:
    """transformers' progress bars ("Loading weights", "Writing model shards") off for the duration, restored
    after: where hybridc shows its own progress for the same work."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def measuring() -> Iterator[None]:
    """transformers' logging at errors only for the duration, restored after: while hybridc measures a model on
    the meta device (its parameters, FLOPs, decode state), where what a family logs (a kernel it would fall back
    from, an argument it ignores) is about the measurement, not about a model the user runs."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """``measuring`` and ``transformers_bars_off`` together: for tiny stand-in models that hybridc.testing builds,
    saves and loads, whose messages and bars concern nobody."""
    with measuring(), transformers_bars_off():
        yield


def for_command() -> None:
    """What a hybridc command sets for the rest of its process: ``install``, and transformers' progress bars off
    (the command shows its own progress)."""
    from transformers.utils import logging as hf_logging

    install()
    hf_logging.disable_progress_bar()


def install() -> None:
    """Drop transformers' kernel-fallback advice for mamba-ssm and causal-conv1d (see the module doc); installing
    it again changes nothing."""
    logger = logging.getLogger(KERNEL_FALLBACK_LOGGER)
    if not any(isinstance(f, _DropMessages) and f.pattern is KERNEL_FALLBACK for f in logger.filters):
        logger.addFilter(_DropMessages(KERNEL_FALLBACK))


@dataclass
class Dropped:
    """Lines ``without_on_stderr`` kept from stderr (for the caller that stops filtering once it has seen one)."""

    lines: list[bytes] = field(default_factory=list)


@contextlib.contextmanager
def without_on_stderr(pattern: re.Pattern[bytes]) -> Iterator[Dropped]:
    """Run the body with the process's stderr (file descriptor 2: Python's and C++'s and child processes'
    writes alike) going to a temporary file, then write what it received to stderr, except the lines matching
    ``pattern``. For short calls whose output can wait until they return."""
    dropped = Dropped()
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to filter
        yield dropped
        return
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield dropped
            finally:
                for stream in (sys.stderr, sys.__stderr__):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os.dup2(saved, 2)
                captured.seek(0)
                kept = []
                for line in captured.read().splitlines(keepends=True):
                    (dropped.lines if pattern.search(line) else kept).append(line)
                _write_all(2, b"".join(kept))
    finally:
        os.close(saved)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except OSError:  # a closed or broken stderr: nowhere to say it
            return
        data = data[written:]


# the once-per-process messages seen (and dropped) in this process: a fact about the process, as the
# library's own print-once flag is
_SEEN: set[bytes] = set()


def until_seen(call: Callable[..., Any], pattern: re.Pattern[bytes]) -> Callable[..., Any]:
    """``call`` with ``pattern``'s lines dropped from stderr (``without_on_stderr``) until this process has seen
    one: for a message a library prints once per process."""

    def quietly(*args: Any, **kwargs: Any) -> Any:
        if pattern.pattern in _SEEN:
            return call(*args, **kwargs)
        dropped = Dropped()
        try:
            with without_on_stderr(pattern) as dropped:
                return call(*args, **kwargs)
        finally:  # (the lines are sorted when the block ends)
            if dropped.lines:
                _SEEN.add(pattern.pattern)

    return quietly


@contextlib.contextmanager
def quiet_lm_eval_git() -> Iterator[None]:
    """While lm-eval runs: its ``git describe`` for the working directory's commit without git's "fatal: not a
    git repository" (lm-eval records no commit then, as before)."""
    try:
        from lm_eval import evaluator
    except ImportError:
        yield
        return
    original = getattr(evaluator, "get_git_commit_hash", None)
    if original is None:
        yield
        return

    def quietly() -> Any:
        with without_on_stderr(NOT_A_GIT_REPOSITORY):
            return original()

    evaluator.get_git_commit_hash = quietly
    try:
        yield
    finally:
        evaluator.get_git_commit_hash = original
