"""Reading records (dicts of columns) from local files or the Hub, through the ``datasets`` library.

Local files use the packaged builders (``text``, ``json``, ``csv``), which need no network. They are
prepared in a temporary cache directory that is deleted afterwards (the data is read into memory), so
nothing is written next to the data or into the user's cache. ``hf:<id>[@revision]`` goes through
``load_dataset(id, split="train")`` and its usual cache; offline it only works for datasets already
cached, and a failure becomes a ``RunError`` with a hint.
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunError

BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".csv": "csv"}


@dataclass(frozen=True)
class Records:
    """Columns read from one file or dataset: ``columns[name]`` is a list with one value per record."""

    origin: str  # the file or hf:<id> the records came from, for messages
    columns: dict[str, list[Any]]  # the columns asked for (all when none were named)
    fields: tuple[str, ...]  # every column the source has
    num_records: int

    def __len__(self) -> int:
        return self.num_records


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide datasets' progress bars and its log lines (errors are reported by hybridc) for the
    duration, then restore the caller's settings."""
    from datasets import utils as ds_utils
    from datasets.utils import logging as ds_logging

    bars_were_disabled = ds_utils.are_progress_bars_disabled()
    verbosity = ds_logging.get_verbosity()
    with warnings.catch_warnings():  # HF_DATASETS_DISABLE_PROGRESS_BARS=0 wins and warns: fine
        warnings.simplefilter("ignore")
        ds_utils.disable_progress_bars()
    ds_logging.set_verbosity(ds_logging.CRITICAL)
    try:
        yield
    finally:
        ds_logging.set_verbosity(verbosity)
        if not bars_were_disabled:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds_utils.enable_progress_bars()


def read_local(path: Path, columns: Sequence[str] | None = None) -> Records:
    """Records of one local file: a ``.txt`` file is one record ``{"text": whole file}``; ``.jsonl``/``.json``
    one record per JSON line; ``.csv`` one per row. ``columns`` keeps only those (when present)."""
    builder = BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"unsupported data file type '{path.suffix}'")
    kwargs: dict[str, Any] = {"sample_by": "document"} if builder == "text" else {}
    import datasets

    with tempfile.TemporaryDirectory(prefix="hybridc-datasets-") as cache, _quiet():
        try:
            ds = datasets.load_dataset(builder, data_files=[str(path)], split="train", cache_dir=cache,
                                       keep_in_memory=True, **kwargs)
            return _records(str(path), ds, columns)
        except Exception as err:
            raise RunError(f"cannot read data file {path}: {_reason(err)}",
                           hint=_hint_for(builder)) from err


def read_hub(ref: str, columns: Sequence[str] | None = None) -> Records:
    """The ``train`` split of Hub dataset ``<id>[@revision]`` (the text after ``hf:``)."""
    name, _, revision = ref.partition("@")
    import datasets

    from ..components import hub

    down = hub.unreachable()
    with _quiet(), _cache_only(down is not None):
        try:
            ds = datasets.load_dataset(name, split="train", revision=revision or None)
            return _records(f"hf:{ref}", ds, columns)
        except Exception as err:
            if down is not None:
                raise RunError(f"cannot load dataset hf:{ref}: {down}",
                               hint=hub.hint("the dataset", "a local .jsonl (or .txt/.csv) file")) from err
            raise RunError(
                f"cannot load dataset hf:{ref}: {_reason(err)}",
                hint="datasets from the Hub need the network the first time (then they are cached under "
                     "HF_DATASETS_CACHE); offline, save the data as a local .jsonl (or .txt/.csv) file and "
                     "name that file instead",
            ) from err


@contextlib.contextmanager
def _cache_only(on: bool) -> Iterator[None]:
    """datasets' offline mode while the Hub does not answer: its cache, else an error at once instead of
    huggingface_hub's retries. datasets has no per-call switch (only ``datasets.config.HF_HUB_OFFLINE``,
    read when it loads), so the flag is set for the call and put back."""
    if not on:
        yield
        return
    import datasets.config

    before = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = before


def _records(origin: str, ds: Any, columns: Sequence[str] | None) -> Records:
    names = [c for c in ds.column_names if columns is None or c in columns]
    return Records(origin, {c: list(ds[c]) for c in names}, tuple(ds.column_names), len(ds))


def _reason(err: BaseException) -> str:
    """``Type: first line`` of ``err``; datasets wraps parse errors in a generic DatasetGenerationError
    whose cause says what was wrong, so the cause is shown instead."""
    cause = err.__cause__ or err.__context__
    if type(err).__name__ == "DatasetGenerationError" and cause is not None:
        err = cause
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _hint_for(builder: str) -> str:
    if builder == "json":
        return "a .jsonl file holds one JSON object per line, in UTF-8"
    if builder == "csv":
        return "a .csv file needs a header row naming its columns, in UTF-8"
    return "text files must be UTF-8"
