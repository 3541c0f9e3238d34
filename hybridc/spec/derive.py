"""Stages derived from a spec's own, as canonical data: the same training with the mixture fixed.

Used where a run is compared with the searched hybrid at the same budget: a sweep point (the hybrid at
fixed alphas, ``hybridc sweep``) and a component alone (``train.baselines``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .model import TRAINING_KINDS, Stage


def fixed_mixture_stages(stages: Sequence[dict[str, Any]], plan: Sequence[Stage], *, kind: str | None = None,
                         train: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``stages`` (canonical data; ``plan``: the same stages parsed) with nothing left to search: a search
    stage becomes a finetune stage with the weight steps the search takes (``Stage.weight_budget``: half of
    an alternating search's steps), every training stage trains ``train`` (default: its own groups without
    the alphas) and, with ``kind``, becomes a stage of that kind; discretization is dropped (a distill stage
    becomes a finetune stage of its steps). Rewinds stay,
    so the final weights have had exactly the fine-tuning the searched hybrid's have had since its last
    rewind, and everything trained across rewinds (projectors) as many steps in all."""
    out = []
    for stage, parsed in zip(stages, plan, strict=True):
        if stage["kind"] == "rewind":
            out.append(dict(stage))
            continue
        if stage["kind"] not in TRAINING_KINDS:
            continue
        stage = dict(stage)
        if stage["kind"] == "distill":  # no discretized student: the same steps on the labels
            stage["kind"] = "finetune"
            stage.pop("distill", None)
        if stage["kind"] == "search":
            stage["kind"] = "finetune"
            for key in ("search", "steps", "epochs"):
                stage.pop(key, None)
            stage.update(parsed.weight_budget())
        if kind is not None:
            stage["kind"] = kind
        stage["train"] = list(train) if train is not None else [g for g in stage["train"] if g != "alphas"]
        out.append(stage)
    return out
