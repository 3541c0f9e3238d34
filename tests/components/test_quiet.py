"""Library messages that do not concern hybridc's users are dropped where they arise, and only those.

Each message is first produced by the library itself (transformers' kernel fallback, git through lm-eval's
own function) without hybridc's filter, so a test cannot pass on a message this version no longer prints;
then with the filter, and other messages of the same source must still come through.
"""

from __future__ import annotations

import logging
import os
import shutil

import pytest
import torch

from hybridc.components import quiet


class Shown(logging.Handler):
    """The messages that reach transformers' handlers (what a user would see)."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture()
def fallback_logger():
    """(transformers' kernel logger without hybridc's filter, what reaches transformers' handlers); its
    print-once memory cleared, the filter restored after."""
    from transformers.utils import logging as hf_logging  # (adds Logger.warning_once)

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # (transformers' default; another test or client may have changed it)
    logger = logging.getLogger(quiet.KERNEL_FALLBACK_LOGGER)
    ours = [f for f in logger.filters if isinstance(f, quiet._DropMessages)]
    for f in ours:
        logger.removeFilter(f)
    shown = Shown()
    library = logging.getLogger("transformers")
    library.addHandler(shown)
    logging.Logger.warning_once.cache_clear()
    yield logger, shown.messages
    library.removeHandler(shown)
    hf_logging.set_verbosity(verbosity)
    for f in ours:
        if f not in logger.filters:
            logger.addFilter(f)
    logging.Logger.warning_once.cache_clear()


def conv_step() -> None:
    """One of transformers' Mamba kernels with a PyTorch fallback (what a decode step runs)."""
    from transformers.models.mamba import modeling_mamba

    channels, width = 4, 3
    modeling_mamba.causal_conv1d_update(torch.randn(1, channels, 1), torch.zeros(1, channels, width),
                                        torch.randn(channels, width), None, "silu")


def test_transformers_advice_to_install_mamba_kernels_is_dropped_on_a_cpu(fallback_logger):
    logger, shown = fallback_logger
    conv_step()
    assert [m for m in shown if m.startswith("`causal_conv1d_update` is falling back to its reference PyTorch")]
    shown.clear()
    logging.Logger.warning_once.cache_clear()
    quiet.install()
    quiet.install()  # (twice: one filter)
    assert sum(isinstance(f, quiet._DropMessages) for f in logger.filters) == 1
    conv_step()
    logger.warning("`chunk_gated_delta_rule` is falling back to its reference PyTorch implementation because "
                   "`flash-linear-attention` is not installed. This is correct but much slower.")
    logger.warning("Kernel causal_conv1d not found in _HUB_KERNEL_MAPPING")
    assert not any("causal_conv1d_update" in m for m in shown)
    assert len(shown) == 2  # (other messages of the logger stay)


def test_importing_hybridcs_torch_side_installs_the_filter():
    import hybridc.components.adapters  # noqa: F401

    logger = logging.getLogger(quiet.KERNEL_FALLBACK_LOGGER)
    assert any(isinstance(f, quiet._DropMessages) and f.pattern is quiet.KERNEL_FALLBACK for f in logger.filters)


def test_a_once_per_process_message_on_stderr_is_dropped_and_everything_else_kept(capfd):
    quiet._SEEN.discard(quiet.DDP_UNUSED.pattern)
    message = (b"[rank0]:[W1207 20:25:24.49 reducer.cpp:1529] Warning: find_unused_parameters=True was specified in "
               b"DDP constructor, but did not find any unused parameters in the forward pass. This flag ...\n")
    calls = []

    def forward(x):  # writes as C++ does: to file descriptor 2, not through sys.stderr
        calls.append(x)
        os.write(2, b"before\n" + (message if x == 1 else b"") + b"after %d\n" % x)
        return x * 10

    quietly = quiet.until_seen(forward, quiet.DDP_UNUSED)
    assert [quietly(0), quietly(1), quietly(2)] == [0, 10, 20]
    err = capfd.readouterr().err
    assert "find_unused_parameters" not in err
    assert err.splitlines() == ["before", "after 0", "before", "after 1", "before", "after 2"]
    assert quiet.DDP_UNUSED.pattern in quiet._SEEN  # (seen: later calls run unfiltered)


def test_stderr_is_restored_when_the_call_fails(capfd):
    def failing():
        os.write(2, b"kept\n")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        quiet.until_seen(failing, quiet.DDP_UNUSED)()
    os.write(2, b"later\n")
    assert capfd.readouterr().err.splitlines() == ["kept", "later"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_lm_evals_commit_lookup_outside_a_repository_says_nothing(tmp_path, monkeypatch, capfd):
    from lm_eval import evaluator

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # (tmp_path is inside no repository)
    evaluator.get_git_commit_hash()
    assert "fatal: not a git repository" in capfd.readouterr().err
    original = evaluator.get_git_commit_hash
    with quiet.quiet_lm_eval_git():
        assert evaluator.get_git_commit_hash() is None
    assert evaluator.get_git_commit_hash is original
    assert capfd.readouterr().err == ""
