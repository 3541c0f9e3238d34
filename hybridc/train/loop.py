"""One training loop for every training stage (align, search, finetune, retrain).

A stage trains the named parameter groups (the others are frozen: ``requires_grad`` off, not in any
optimizer, so they stay bit-identical) with AdamW and a warm-up + linear/cosine/constant schedule;
search stages also step the alphas (``search.AlphaSearch``). Batches are a pure function of
(seed, stage, step) and every step reseeds torch's RNG from the same triple, so a run resumed from a
checkpoint takes exactly the steps an uninterrupted run takes.
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager, nullcontext
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..data import DataBundle, Split, batch_indices
from ..errors import RunError
from ..models.hybrid import IGNORE_INDEX, HybridModel
from ..models.component_models import derived_seed
from ..spec.model import Distill, Stage
from .nonfinite import describe_parameters, nonfinite_parameters, where_nonfinite
from .search import AlphaSearch, CostBound

WEIGHT_GROUPS = ("components", "projectors", "embeddings", "head")


def lr_lambda(stage: Stage, steps: int) -> Callable[[int], float]:
    """Multiplier of the peak lr after ``step`` scheduler steps: linear warm-up, then the decay."""
    warmup = min(stage.warmup, steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if stage.schedule == "constant" or steps <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / (steps - warmup))
        if stage.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return factor


@dataclass
class StageOptimizers:
    weights: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LambdaLR | None
    search: AlphaSearch | None

    def state_dict(self, weights_state: Callable[[torch.optim.Optimizer], dict[str, Any]] | None = None) -> dict[str, Any]:
        """``weights_state(optimizer)``: how to read the weights' optimizer state (default: its
        ``state_dict()``; a sharded model's gathers it whole)."""
        read = weights_state or (lambda optimizer: optimizer.state_dict())
        return {
            "weights": read(self.weights) if self.weights is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "search": self.search.state_dict() if self.search is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.weights is not None and state.get("weights") is not None:
            self.weights.load_state_dict(state["weights"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.search is not None and state.get("search") is not None:
            self.search.load_state_dict(state["search"])


def alternating_splits(stage: Stage, data: DataBundle, seed: int) -> tuple[Split, Split]:
    """(weights, search) of an alternating search stage: the training split without and with the search
    split its alpha steps read (``DataBundle.search_split``); the validation split is never among them."""
    try:
        return data.search_split(stage.search.heldout, seed)
    except ValueError as err:
        raise RunError(f"stage '{stage.name}': {err}",
                       f"use more data, or a larger heldout= in {stage.search} (0: the alpha steps read the "
                       "training stream)") from None


def split_roles(stage: Stage, data: DataBundle, seed: int) -> dict[str, Any]:
    """Which split each kind of step of ``stage`` reads, with sizes in sequences (the run's metrics and
    the plan record it): ``{"weights": "train", ...}``, or for an alternating search ``{"weights": "train
    without search", "alphas": "search", "search_sequences": k, ...}``."""
    if stage.search is None:
        return {"weights": "train", "train_sequences": len(data.train)}
    if not stage.search.alternate:
        return {"weights and alphas": "train", "train_sequences": len(data.train)}
    if stage.search.heldout == 0:
        return {"weights": "train", "alphas": "train (the batches between the weight steps')",
                "train_sequences": len(data.train)}
    weights, search = alternating_splits(stage, data, seed)
    return {"weights": "train without search", "alphas": "search", "train_sequences": len(weights),
            "search_sequences": len(search)}


def weight_steps(stage: Stage, steps: int) -> int:
    """Optimizer steps the weights take (half of them in alternating search)."""
    if stage.search is not None and stage.search.alternate:
        return (steps + 1) // 2
    return steps


def freeze_for(model: HybridModel, stage: Stage) -> None:
    """requires_grad on exactly the stage's groups (alphas of a search stage are the search's)."""
    for group, params in model.param_groups().items():
        for _, p in params:
            p.requires_grad_(group in stage.train)


def cost_bound(model: HybridModel) -> CostBound | None:
    """The spec's budget as a bound on the search's expected cost (None without one)."""
    from ..graph.budget import MEASURES, cost_of, cost_table

    budget = model.resolved_spec.spec.hybrid.budget
    if budget is None or model.graph.discretized:
        return None
    measure = MEASURES[budget.measure]
    return CostBound(cost_table(model.resolved_spec, measure), budget.limit(cost_of(model.graph, measure)))


def build_optimizers(model: HybridModel, stage: Stage, steps: int) -> StageOptimizers:
    groups = model.param_groups()
    weights = [p for g in WEIGHT_GROUPS if g in stage.train for _, p in groups[g]]
    alphas = [p for _, p in groups["alphas"]] if "alphas" in stage.train else []
    search = None
    param_groups = []
    if weights:
        param_groups.append({"params": weights, "weight_decay": stage.weight_decay})
    if alphas and stage.search is not None:
        search = AlphaSearch([b.mix for b in model.blocks], stage.search, cost_bound(model))
    elif alphas:  # alphas trained outside search (e.g. align): with the weights, no decay
        param_groups.append({"params": alphas, "weight_decay": 0.0})
    optimizer = scheduler = None
    if param_groups:
        optimizer = torch.optim.AdamW(param_groups, lr=stage.lr, betas=stage.betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(stage, weight_steps(stage, steps)))
    return StageOptimizers(optimizer, scheduler, search)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class MacroAccuracy:
    """MAD's accuracy: torchmetrics' ``MulticlassAccuracy(average="macro", ignore_index=-100)`` as MAD-Lab
    (``mad/metrics.py``) uses it, accumulated over every update (the metric's ``compute()``).

    Per class c, over the scored positions seen: tp = predicted c where the target is c, fn = target c
    predicted otherwise, fp = predicted c where the target is another class. The score is the mean of
    the recall tp / (tp + fn) over the classes with tp + fp + fn > 0: every class that is a target *or*
    is predicted, so a class that is only ever predicted scores 0 and counts (torchmetrics >= 1.0,
    ``_adjust_weights_safe_divide``; 0.11 averaged over all ``num_classes``). Positions whose target is
    ``ignore_index`` are dropped by the caller and are neither targets nor predictions. NaN when nothing
    was scored (torchmetrics would say 0).
    """

    def __init__(self) -> None:
        self.tp = torch.zeros(0, dtype=torch.long)  # (C,) per class: tp
        self.support = torch.zeros(0, dtype=torch.long)  # (C,) tp + fn: scored positions with that target
        self.predicted = torch.zeros(0, dtype=torch.long)  # (C,) tp + fp: scored positions predicted so

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """``preds``, ``targets``: (n,) long class ids at the scored positions only."""
        preds, targets = preds.reshape(-1).long().cpu(), targets.reshape(-1).long().cpu()
        if preds.shape != targets.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and targets {tuple(targets.shape)} differ")
        if not len(targets):
            return
        if int(min(preds.min(), targets.min())) < 0:
            raise ValueError("class ids must be >= 0 (drop ignore_index positions first)")
        size = max(len(self.tp), int(max(preds.max(), targets.max())) + 1)
        counts = [torch.bincount(x, minlength=size) for x in (targets[preds == targets], targets, preds)]
        self.tp, self.support, self.predicted = (
            torch.nn.functional.pad(old, (0, size - len(old))) + new
            for old, new in zip((self.tp, self.support, self.predicted), counts))

    def compute(self) -> float:
        counted = (self.support + self.predicted) > 0  # tp + fp + fn > 0
        if not counted.any():
            return float("nan")
        recall = self.tp.double() / self.support.clamp(min=1).double()  # 0 where tp + fn == 0
        return float(recall[counted].sum() / counted.sum())


@torch.no_grad()
def evaluate(model: HybridModel, split: Split, batch_size: int, device: torch.device,
             max_batches: int | None = None, task: str | None = None,
             progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """Mean loss per scored target, accuracy and macro accuracy on a split, in order. ``model`` is a
    hybrid or a plain transformers model of ``task`` (default: the hybrid's). ``progress`` is told the
    batches done after each (``eval_batches`` of them).

    Scored positions are those whose label is not ``IGNORE_INDEX``, after causal-lm's shift by one.
    ``accuracy`` is micro: the fraction of scored targets predicted right (argmax). ``macro_accuracy``
    is MAD's metric (``MacroAccuracy``: torchmetrics' macro ``MulticlassAccuracy``, the mean recall over
    the classes that are a target or predicted), accumulated over the whole split, so it does not
    depend on ``batch_size``. MAD-Lab logs the metric per batch and reports the mean of the batches'
    values weighted by their number of sequences (Lightning's ``on_epoch`` mean of the tensor
    ``forward`` returns), which depends on its test batch size (its training batch size); the two agree
    when one batch holds the split and are close when every batch holds each class many times.
    """
    was_training = model.training
    model.eval()
    total_loss = 0.0
    total_correct = 0
    total = 0
    macro = MacroAccuracy()
    causal = split.labels.dim() == 2 and (task or model.graph.task) == "causal-lm"
    n = len(split)
    for b, start in enumerate(range(0, n, batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        batch = _to(split.batch(torch.arange(start, min(n, start + batch_size))), device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits.float()
        labels = batch["labels"]
        if causal:
            logits, labels = logits[:, :-1], labels[:, 1:]
        flat_logits = logits.reshape(-1, logits.shape[-1])
        flat_labels = labels.reshape(-1)
        keep = flat_labels != IGNORE_INDEX
        if keep.any():
            total_loss += torch.nn.functional.cross_entropy(flat_logits[keep], flat_labels[keep], reduction="sum").item()
            targets = flat_labels[keep]
            preds = flat_logits[keep].argmax(-1)
            total_correct += int((preds == targets).sum())
            total += int(keep.sum())
            macro.update(preds, targets)
        if progress is not None:
            progress(b + 1)
    model.train(was_training)
    if total == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "macro_accuracy": float("nan"), "targets": 0}
    loss = total_loss / total
    out = {"loss": loss, "accuracy": total_correct / total, "macro_accuracy": macro.compute(), "targets": total}
    if causal:
        out["perplexity"] = math.exp(min(loss, 50.0))
    return out


def nonfinite_groups(model: HybridModel) -> list[str]:
    """Parameter groups holding a non-finite gradient or value."""
    return list(nonfinite_parameters(model))


@dataclass(frozen=True)
class Parallel:
    """This process's place among data-parallel processes; ``reduce`` sums a tensor over all of them."""

    world: int = 1
    rank: int = 0
    reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t

    def local(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of a global batch's indices."""
        share = len(indices) // self.world
        return indices[self.rank * share:(self.rank + 1) * share]


def loss_terms(logits: torch.Tensor, labels: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of cross-entropy over scored targets, their count) for a batch; causal-lm shifts by one."""
    if task == "causal-lm":
        logits, labels = logits[:, :-1], labels[:, 1:]
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    total = torch.nn.functional.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total, (flat_labels != IGNORE_INDEX).sum()


def distill_terms(logits: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, task: str,
                  distill: Distill) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over scored targets of T^2 KL(softmax(teacher / T) || softmax(logits / T)) + ce x cross-entropy,
    their count); the positions ``loss_terms`` scores. ``logits``, ``teacher``: (B, T, V) or (B, C)."""
    if task == "causal-lm":
        logits, teacher, labels = logits[:, :-1], teacher[:, :-1], labels[:, 1:]
    flat_labels = labels.reshape(-1)
    keep = flat_labels != IGNORE_INDEX
    student = logits.reshape(-1, logits.shape[-1]).float()[keep]
    target = teacher.reshape(-1, teacher.shape[-1]).float()[keep]
    t = distill.temperature
    kl = torch.nn.functional.kl_div(torch.log_softmax(student / t, -1), torch.log_softmax(target / t, -1),
                                    log_target=True, reduction="sum")
    total = t * t * kl
    if distill.ce:
        total = total + distill.ce * torch.nn.functional.cross_entropy(student, flat_labels[keep], reduction="sum")
    return total, keep.sum()


def eval_batches(split: Split, batch_size: int, max_batches: int | None = None) -> int:
    """The batches ``evaluate`` runs on ``split``."""
    batches = math.ceil(len(split) / batch_size)
    return batches if max_batches is None else min(batches, max_batches)


def _micro_step(model, forward, stage: Stage, step: int, micro: int, split: Split, stream: str, seed: int,
                device: torch.device, task: str, parallel: Parallel, autocast, backward,
                position: int | None = None, teacher: HybridModel | None = None) -> tuple[float, int]:
    """Forward and backward of one micro-batch (this process's share); returns the global mean loss
    and the global number of scored targets. ``position``: which batch of ``stream`` (default ``step``)."""
    index = (step if position is None else position) * stage.grad_accum + micro
    idx = batch_indices(len(split), stage.batch_size * parallel.world, index, seed=seed, stream=stream)
    batch = _to(split.batch(parallel.local(idx)), device)
    torch.manual_seed(derived_seed(seed, stage.name, str(step), str(micro)))
    with autocast():
        logits = forward(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    if teacher is not None:
        with torch.no_grad(), autocast():
            target = teacher(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
        local_sum, local_count = distill_terms(logits, target, batch["labels"], task, stage.distill)
    else:
        local_sum, local_count = loss_terms(logits, batch["labels"], task)
    count = parallel.reduce(local_count.detach().float())
    loss = local_sum / count.clamp(min=1) * parallel.world / stage.grad_accum
    mean = (parallel.reduce(local_sum.detach()) / count.clamp(min=1)).item()
    if not math.isfinite(mean):
        def again() -> None:  # the same micro-batch (and dropout) once more, to find where it went non-finite
            torch.manual_seed(derived_seed(seed, stage.name, str(step), str(micro)))
            with autocast():
                model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))

        where = where_nonfinite(model, again, parallel.world)
        raise RunError(f"stage '{stage.name}' step {step + 1}: the loss is {mean} ({where})",
                       nonfinite_hint(model, stage, where, target if teacher is not None else None))
    backward(loss)
    return mean, int(count.item())


def nonfinite_hint(model: HybridModel, stage: Stage, where: str, teacher_logits: torch.Tensor | None) -> str:
    """What to change after a non-finite loss whose origin ``where_nonfinite`` found (``where``): the distill
    loss's temperature or ce weight when the student's forward was finite and the teacher's too (the loss itself
    overflowed), DASH's temperature when the mixture weights went non-finite, else the learning rate."""
    kept = "the last good checkpoint is kept"
    if "the mixture weights of block" in where:
        taus = {m.gumbel_tau for m in model.modules() if getattr(m, "gumbel_tau", None) is not None}
        if taus:
            return (f"DASH's Gumbel-softmax temperature (tau {', '.join(f'{t:g}' for t in sorted(taus))} at this step) "
                    f"made the mixture weights non-finite: give the search a tau (and tau_end) nearer 1; {kept}")
    if stage.distill is not None and teacher_logits is not None:
        if not bool(torch.isfinite(teacher_logits).all()):
            return f"the teacher's logits are non-finite: the continuous hybrid saved at the discretize stage; {kept}"
        if where.endswith("the loss itself overflowed"):
            d = stage.distill
            return (f"the distill loss kl(temperature={d.temperature:g}, ce={d.ce:g}) overflowed: temperature^2 x KL "
                    f"and ce x cross-entropy must stay finite in float32; use a temperature nearer 1 or a smaller "
                    f"ce; {kept}")
    return f"lower the learning rate or add warm-up; {kept}"


@dataclass
class StepResult:
    step: int  # 0-based index of the step just taken in its stage
    kind: str  # "weights" | "alphas" | "joint"
    loss: float  # mean over every scored target of the (global) batch
    lr: float | None
    tokens: int  # scored targets of the global batch
    seconds: float


def train_steps(model: HybridModel, stage: Stage, steps: int, start: int, data: DataBundle, optim: StageOptimizers,
                *, seed: int, device: torch.device, backward: Callable[[torch.Tensor], None],
                clip: Callable[[list[torch.nn.Parameter], float], Any], forward: Callable[..., Any] | None = None,
                parallel: Parallel = Parallel(),
                autocast: Callable[[], AbstractContextManager] = nullcontext,
                after_backward: Callable[[], None] | None = None,
                teacher: HybridModel | None = None) -> Iterator[StepResult]:
    """Take steps ``start .. steps-1`` of ``stage``, yielding after each one (the caller logs and
    checkpoints). Raises ``RunError`` on a non-finite loss, naming the stage, step and bad groups.

    ``forward`` is the (possibly data-parallel wrapped) model; ``model`` the plain one. A step's global
    batch is ``batch_size * world`` sequences; each process takes its share, and the loss of each share is
    its summed cross-entropy over the global number of scored targets (times ``world``, which the gradient
    averaging divides out), so any process count computes the same update as one process would.
    ``after_backward`` runs once per step after the micro-batches' backward passes, before any update.
    ``teacher`` (a distill stage): the loss is ``distill_terms`` against its logits on the same batch.
    Batches come from the training split; in an alternating search the even steps update the weights on
    the training split without the search split, the odd steps the alphas on the search split
    (``split_roles``). The validation split is only ever evaluated.
    """
    forward = forward or model
    search = optim.search
    alternate = search is not None and search.alternate
    if alternate:
        heldout = stage.search.heldout
        weights_split, search_split = alternating_splits(stage, data, seed)
        splits = {"weights": weights_split, "alphas": search_split}
    model.train()
    task = model.graph.task
    try:
        for step in range(start, steps):
            began = time.perf_counter()
            kind = "joint" if search is not None and not alternate and search.moves(step) else "weights"
            if search is not None:
                search.at_step(step, steps)
            split, stream, position = data.train, f"{stage.name}/train", step
            if alternate:
                kind = "weights" if step % 2 == 0 else "alphas"
                split = splits[kind]
                if heldout:  # two streams, each read in order; else one stream, shared batch by batch
                    stream, position = f"{stage.name}/{'search' if kind == 'alphas' else 'train'}", step // 2
            if optim.weights is not None:
                optim.weights.zero_grad(set_to_none=True)
            if search is not None:
                search.zero_grad()
                if kind != "weights":
                    search.prepare_step()  # GAEA: simplex leaves that collect dL/da over the micro-batches
            loss_total = 0.0
            tokens = 0
            for micro in range(stage.grad_accum):
                try:
                    mean, count = _micro_step(model, forward, stage, step, micro, split, stream, seed, device, task,
                                              parallel, autocast, backward, position, teacher)
                except torch.OutOfMemoryError:
                    raise RunError(f"stage '{stage.name}' step {step + 1}: out of memory with batch_size {stage.batch_size}",
                                   f"lower batch_size and raise grad_accum (e.g. batch_size: {max(1, stage.batch_size // 2)}, "
                                   f"grad_accum: {stage.grad_accum * 2}); the last checkpoint is kept") from None
                loss_total += mean / stage.grad_accum
                tokens += count
            if after_backward is not None:
                after_backward()
            if kind != "alphas" and optim.weights is not None:
                if stage.grad_clip is not None:
                    clip([p for g in optim.weights.param_groups for p in g["params"]], stage.grad_clip)
                bad = nonfinite_parameters(model)
                if bad:
                    raise RunError(f"stage '{stage.name}' step {step + 1}: {describe_parameters(bad)}",
                                   "lower the learning rate or clip gradients (grad_clip); the last good checkpoint is kept")
                optim.weights.step()
                optim.scheduler.step()
            if kind != "weights" and search is not None:
                search.reduce_grads(parallel)
                search.step()
            lr = optim.weights.param_groups[0]["lr"] if optim.weights is not None else None
            yield StepResult(step, kind, loss_total, lr, tokens, time.perf_counter() - began)
    finally:
        if search is not None:
            search.end()
