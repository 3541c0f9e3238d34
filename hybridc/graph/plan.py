"""Lowering the spec's training stages to a ``TrainingPlan`` (torch-free, written as plan.json).

The plan names, for every stage, the parameter groups that train and those that stay frozen, the
optimizer and schedule of the weights, the search algorithm and optimizer of the alphas, the data,
the stage's length (``steps``, or ``epochs`` with ``steps`` null: the step count then depends on the
size of the training split, known only when the run builds the data), and how many parameters train
(from the block graph; after a discretize stage of a searched hybrid the count depends on what search
selects, and is ``None`` until then).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .budget import selection_for
from .selection import discretize_graph
from .blockgraph import BlockGraph
from ..spec.emit import render_data
from ..spec.frontend import ResolvedSpec
from ..spec.model import PARAM_GROUPS, Stage

PLAN_VERSION = 2  # 2: components (their order is the alphas' column order)


@dataclass(frozen=True)
class OptimizerPlan:
    name: str
    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float = 1e-8


@dataclass(frozen=True)
class SchedulePlan:
    kind: str  # linear | cosine | constant
    warmup: int
    steps: int | None  # None: the stage's epochs, counted in steps once the data is built


@dataclass(frozen=True)
class SearchPlan:
    algorithm: str  # darts | dash | gaea
    lr: float
    alternate: bool
    tau: float | None
    optimizer: str  # adam (darts/dash) | exponentiated-gradient (gaea)
    heldout: float | None = None  # alternate: the fraction of the training split in the search split
    alpha_data: str = "train"  # the split the alpha steps read: search | train
    tau_end: float | None = None  # dash: the annealed temperature at the stage's last step
    warmup: int = 0  # the stage's first steps, in which only the weights move


@dataclass(frozen=True)
class StagePlan:
    name: str
    kind: str
    graph: str  # continuous | discretized: the model this stage runs on
    train: tuple[str, ...]
    frozen: tuple[str, ...]
    trainable_params: int | None  # None: depends on the selection of an earlier search
    init: str | None
    data: str | None
    steps: int | None  # None: given by epochs (the steps depend on the training split's size)
    epochs: float | None
    batch_size: int  # per process and micro-batch
    grad_accum: int
    global_batch: int  # sequences per optimizer step: batch_size x grad_accum x processes
    optimizer: OptimizerPlan | None
    schedule: SchedulePlan | None
    grad_clip: float | None
    eval_every: int
    search: SearchPlan | None
    distill: str | None = None  # distill stages: the loss against the teacher


@dataclass(frozen=True)
class TrainingPlan:
    name: str
    seed: int
    components: tuple[str, ...]  # in the spec's order: the column order of every alphas row
    processes: int  # data-parallel processes the plan runs on
    params: dict[str, int]  # by group, continuous graph
    flops_per_token: int
    stages: tuple[StagePlan, ...]

    def to_json(self) -> str:
        return json.dumps({"plan_version": PLAN_VERSION, **asdict(self)}, indent=2) + "\n"


def _stage_plan(stage: Stage, graph: BlockGraph | None, discretized: bool, processes: int) -> StagePlan:
    groups = graph.params_by_group() if graph is not None else None
    train = stage.train
    trainable = sum(groups[g] for g in train) if groups is not None else None
    search = None
    if stage.search is not None:
        s = stage.search
        search = SearchPlan(s.algorithm, s.lr, s.alternate, s.tau,
                            "exponentiated-gradient" if s.algorithm == "gaea" else "adam",
                            heldout=s.heldout if s.alternate else None,
                            alpha_data="search" if s.alternate and s.heldout > 0 else "train",
                            tau_end=s.tau_end, warmup=s.warmup)
    trains = stage.trains
    return StagePlan(
        name=stage.name,
        kind=stage.kind,
        graph="discretized" if discretized else "continuous",
        train=train,
        frozen=tuple(g for g in PARAM_GROUPS if g not in train),
        trainable_params=trainable,
        init=stage.init,
        data=render_data(stage.data) if stage.data is not None else None,
        steps=stage.steps,
        epochs=stage.epochs,
        batch_size=stage.batch_size,
        grad_accum=stage.grad_accum,
        global_batch=stage.batch_size * stage.grad_accum * processes,
        optimizer=OptimizerPlan("adamw", stage.lr, stage.weight_decay, stage.betas) if trains else None,
        schedule=SchedulePlan(stage.schedule, stage.warmup, stage.steps) if trains else None,
        grad_clip=stage.grad_clip,
        eval_every=stage.eval_every,
        search=search,
        distill=str(stage.distill) if stage.distill is not None else None,
    )


def lower_plan(rs: ResolvedSpec, graph: BlockGraph, processes: int = 1) -> TrainingPlan:
    """The training plan of a resolved spec and its (continuous) block graph, on ``processes``
    data-parallel processes."""
    stages = []
    current: BlockGraph | None = graph
    discretized = False
    for stage in rs.spec.train.stages:
        if stage.kind == "discretize":
            discretized = True
            # With fixed alphas the selection is known now; with search it is known after training.
            current = (discretize_graph(rs, selection_for(rs, rs.alphas, continuous=graph))
                       if rs.alphas is not None else None)
        stages.append(_stage_plan(stage, current, discretized, processes))
    return TrainingPlan(
        name=rs.spec.name,
        seed=rs.spec.train.seed,
        components=rs.names,
        processes=processes,
        params=graph.params_by_group(),
        flops_per_token=graph.flops_per_token,
        stages=tuple(stages),
    )


def show_length(s: StagePlan) -> str:
    """A stage's length as the plan can tell it: '200' (steps) or '2 epochs' (steps known at run time)."""
    if s.epochs is None:
        return str(s.steps)
    return f"{s.epochs:g} epoch{'' if s.epochs == 1 else 's'}"


def plan_summary(plan: TrainingPlan) -> list[dict[str, Any]]:
    return [{"stage": s.name, "kind": s.kind, "train": ", ".join(s.train) or "-",
             "steps": s.steps if s.epochs is None else show_length(s),
             "trainable": s.trainable_params} for s in plan.stages]
