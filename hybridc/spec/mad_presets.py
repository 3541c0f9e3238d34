"""Settings of the six MAD tasks (Poli et al. 2024, MAD-Lab), torch-free.

- ``mad``: the MAD benchmark's baseline setting of each task.
- ``mad-<key><value>``: the benchmark's one-variable-at-a-time difficulty grid (66 settings over the six
  tasks, e.g. ``mad-length256``, ``mad-examples1600``, ``mad-noise0.4``, ``mad-copy32``, ``mad-vocab2048``).
- ``cpu``: every task scaled down so a small model trains on it in minutes on 2 CPU cores.

Keys: vocab (tokens, including special and noise tokens), length (sequence length), examples (training
sequences), test (test sequences; validation uses as many), noise (fraction of noise pairs),
noise_vocab (noise tokens), copy (tokens to copy), motif (largest key/value motif).
"""

from __future__ import annotations

from typing import Any

TASKS = (
    "in-context-recall", "noisy-in-context-recall", "fuzzy-in-context-recall",
    "selective-copying", "compression", "memorization",
)

BASELINE: dict[str, dict[str, Any]] = {
    "in-context-recall": dict(vocab=16, length=128, examples=12800),
    "noisy-in-context-recall": dict(vocab=32, noise_vocab=16, length=128, examples=12800, noise=0.2),
    "fuzzy-in-context-recall": dict(vocab=16, length=128, examples=12800, motif=3),
    "selective-copying": dict(vocab=16, length=256, examples=12800, copy=16),
    "compression": dict(vocab=16, length=32, examples=12800),
    "memorization": dict(vocab=256, length=32, examples=256),
}

# The grid: each key varies alone around the baseline (MAD-Lab's configs/tasks/*.yml).
CHANGES: dict[str, dict[str, tuple]] = {
    "in-context-recall": dict(vocab=(32, 64, 128), length=(256, 512, 1024), examples=(6400, 3200, 1600, 800)),
    "noisy-in-context-recall": dict(vocab=(48, 80, 144), length=(256, 512, 1024), examples=(6400, 3200, 1600, 800),
                                    noise=(0.4, 0.6, 0.8)),
    "fuzzy-in-context-recall": dict(vocab=(32, 64, 128), length=(256, 512, 1024), examples=(6400, 3200, 1600, 800)),
    "selective-copying": dict(vocab=(32, 64, 128), length=(512, 1024), examples=(6400, 3200, 1600, 800),
                              copy=(32, 64, 96)),
    "compression": dict(vocab=(32, 64, 128), length=(64, 128, 256), examples=(6400, 3200, 1600, 800)),
    "memorization": dict(vocab=(512, 1024, 2048, 4096, 8192)),
}

CPU: dict[str, dict[str, Any]] = {
    "in-context-recall": dict(vocab=16, length=32, examples=2048),
    "noisy-in-context-recall": dict(vocab=32, noise_vocab=16, length=32, examples=2048, noise=0.2),
    "fuzzy-in-context-recall": dict(vocab=16, length=48, examples=2048, motif=2),
    "selective-copying": dict(vocab=16, length=48, examples=2048, copy=8),
    "compression": dict(vocab=16, length=16, examples=2048),
    "memorization": dict(vocab=64, length=16, examples=128),
}

TEST_EXAMPLES = {"mad": 1280, "cpu": 256}
DEFAULTS = dict(noise=0.0, noise_vocab=0, copy=0, motif=1)


def _value_name(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def presets(task: str) -> dict[str, dict[str, Any]]:
    """Every named preset of ``task``: name -> full settings."""
    out = {"mad": {**DEFAULTS, **BASELINE[task], "test": TEST_EXAMPLES["mad"]},
           "cpu": {**DEFAULTS, **CPU[task], "test": TEST_EXAMPLES["cpu"]}}
    for key, values in CHANGES[task].items():
        for value in values:
            out[f"mad-{key}{_value_name(value)}"] = {**out["mad"], key: value}
    return out


def grid(task: str) -> list[str]:
    """The benchmark's settings of ``task`` (baseline first), as preset names."""
    return [name for name in presets(task) if name != "cpu"]


def settings(task: str, preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A preset's settings with the non-None ``overrides`` applied; KeyError for an unknown preset."""
    out = dict(presets(task)[preset])
    for key, value in (overrides or {}).items():
        if value is not None:
            out[key] = value
    return out


def sequence_length(task: str, values: dict[str, Any]) -> int:
    """Tokens per example the model reads (MAD's fuzzy recall, copying and memorization carry one more
    position than ``length``: the last target's slot)."""
    extra = task in ("fuzzy-in-context-recall", "selective-copying", "memorization")
    return values["length"] + (1 if extra else 0)
