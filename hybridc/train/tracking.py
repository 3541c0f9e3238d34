"""``train --report-to``: the run's metrics also sent to experiment trackers, through Accelerate's.

``metrics.jsonl`` stays the record of the run; every event written there is also given, as scalars at its
global step, to the trackers asked for (TensorBoard, Weights & Biases, MLflow, ... : whatever
``accelerate.tracking`` offers): training loss, learning rate and throughput, the alpha of each component in
each block, a budgeted search's expected cost and multiplier, and each evaluation (``valid/loss``, ...,
``test/...`` at the last step). Only the main process reports. Local trackers write under ``RUN/logs/``
(TensorBoard: ``RUN/logs/<spec name>/``); the run's name is the project's (a W&B project, an MLflow
experiment), and its canonical spec, flattened, is the run's configuration (hyper-parameters).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import RunError
from .rundir import LOGS  # RUN/logs: what local trackers write

# the package each tracker needs, where its name is not the tracker's
PACKAGES = {"comet_ml": "comet-ml"}


def tracker_names() -> tuple[str, ...]:
    """The trackers Accelerate offers (``--report-to`` also takes ``all``: every one installed)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    return tuple(sorted(LOGGER_TYPE_TO_CLASS))


def parse_report_to(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``tensorboard,wandb`` -> the tracker names, checked (``none`` or nothing: none; ``all``: every one
    installed). An unknown name or a tracker whose package is not installed is a ``RunError`` at once,
    before anything runs (Accelerate itself would drop a tracker it cannot import without a word)."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    names = tuple(dict.fromkeys(item.strip().lower() for item in items if item.strip()))
    if not names or names == ("none",):
        return ()  # (before Accelerate's import, which imports torch: `train` refuses what it can before that)
    from accelerate.tracking import get_available_trackers

    known = tracker_names()
    available = {str(t) for t in get_available_trackers()}
    if "all" in names:
        if len(names) > 1:
            raise RunError(f"--report-to {','.join(names)}: 'all' stands alone", "give all, or tracker names")
        if not available:
            raise RunError("--report-to all: no tracker is installed",
                           "install one, e.g. pip install tensorboard (then RUN/logs holds its event files)")
        return tuple(sorted(available))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RunError(f"--report-to: unknown tracker{'s' * (len(unknown) > 1)} {', '.join(unknown)}",
                       f"choose from {', '.join(known)}, all or none (comma-separated)")
    missing = [n for n in names if n not in available]
    if missing:
        packages = " ".join(PACKAGES.get(n, n) for n in missing)
        raise RunError(f"--report-to {','.join(names)}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                       "not installed", f"pip install {packages}")
    return names


def flat_config(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec as one level of ``a.b.c: value`` with the values trackers take (bool, int, float, str,
    None): lists and anything else as their text; a list of mappings (stages) by each one's name."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_config(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                out.update(flat_config(item, f"{name}.{item.get('name', i)}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def event_scalars(event: Mapping[str, Any], components: Sequence[str]) -> dict[str, float]:
    """The scalars of one ``metrics.jsonl`` event, by tracker name (none for events without numbers).

    ``train``: ``train/loss`` (``search/loss`` for an alternating search's alpha steps), ``train/lr``,
    ``train/tokens_per_s``, ``alphas/block<i>/<component>``, ``search/expected_cost`` and
    ``search/budget_multiplier``; ``eval``: ``<split>/loss``, ``perplexity``, ``accuracy``, ``macro_accuracy``;
    ``test``: the same under ``test/``."""
    values: dict[str, Any] = {}
    kind = event.get("event")
    if kind == "train":
        values["search/loss" if event.get("kind") == "alphas" else "train/loss"] = event.get("loss")
        values["train/lr"] = event.get("lr")
        values["train/tokens_per_s"] = event.get("tokens_per_s")
        for i, row in enumerate(event.get("alphas") or ()):
            for name, alpha in zip(components, row):
                values[f"alphas/block{i}/{name}"] = alpha
        for key in ("expected_cost", "budget_multiplier"):
            if key in event:
                values[f"search/{key}"] = event[key]
    elif kind in ("eval", "test"):
        split = event.get("split", "valid") if kind == "eval" else "test"
        for key in ("loss", "perplexity", "accuracy", "macro_accuracy"):
            values[f"{split}/{key}"] = event.get(key)
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class Trackers:
    """The trackers of one run: ``log(event)`` for each event of ``metrics.jsonl``, ``end()`` when it stops."""

    def __init__(self, accelerator, project: str, config: Mapping[str, Any], components: Sequence[str]):
        self.accelerator = accelerator
        self.components = list(components)
        self.step = 0
        accelerator.init_trackers(project, config=dict(config))

    def log(self, event: Mapping[str, Any]) -> None:
        step = event.get("global_step")
        if isinstance(step, int) and step >= 0:
            self.step = step
        if event.get("event") == "stage":
            self.components = list(event.get("components") or self.components)
        values = event_scalars(event, self.components)
        if values:
            self.accelerator.log(values, step=self.step)

    def end(self) -> None:
        """Flush and close every tracker (the run ended, or stopped)."""
        self.accelerator.end_training()


def logging_dir(run_dir: Path) -> Path:
    return Path(run_dir) / LOGS
