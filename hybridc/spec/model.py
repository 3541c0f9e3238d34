"""The canonical spec: frozen dataclasses with every default explicit.

A ``Spec`` is what the rest of the pipeline sees; it never refers back to YAML. Two specs that mean
the same thing compare equal (key order, comments, quoting and spacing are gone). Layer blocks keep
the form the user chose (``split(n)`` or explicit ranges) because resolving ``split`` needs the
component's config; ``ResolvedSpec`` (see ``resolve.py``) carries the explicit ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Union

SPEC_VERSION = 1
PROJECTOR_KINDS = ("linear", "linear-skip", "mlp", "mlp-skip", "none")
PARAM_GROUPS = ("components", "projectors", "embeddings", "head", "alphas")
STAGE_KINDS = ("align", "search", "rewind", "finetune", "discretize", "retrain", "distill")
TRAINING_KINDS = ("align", "search", "finetune", "retrain", "distill")  # stages that take optimizer steps
SEARCH_ALGORITHMS = ("darts", "dash", "gaea")
SCHEDULES = ("linear", "cosine", "constant")
TASK_KINDS = ("causal-lm", "compress", "classify", "tag", "match")
MIXTURE_MODES = ("search", "fixed", "programmed")
BYTES_TOKENIZER = "bytes"
BYTES_VOCAB_SIZE = 259  # 256 byte values + pad, bos, eos


@dataclass(frozen=True, order=True)
class LayerRange:
    """Half-open range of layer indices [start, stop)."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"{self.start}..{self.stop}"


def split_ranges(num_layers: int, n: int) -> tuple[LayerRange, ...]:
    """``split(n)``: n contiguous ranges; the first ``num_layers % n`` get one extra layer."""
    base, extra = divmod(num_layers, n)
    ranges, start = [], 0
    for i in range(n):
        stop = start + base + (1 if i < extra else 0)
        ranges.append(LayerRange(start, stop))
        start = stop
    return tuple(ranges)


@dataclass(frozen=True)
class Split:
    """``split(n)``: cut the component's layers into n near-equal contiguous blocks."""

    n: int

    @property
    def count(self) -> int:
        return self.n

    def ranges(self, num_layers: int) -> tuple[LayerRange, ...]:
        return split_ranges(num_layers, self.n)

    def __str__(self) -> str:
        return f"split({self.n})"


@dataclass(frozen=True)
class Ranges:
    """Explicit layer ranges, one per block."""

    items: tuple[LayerRange, ...]

    @property
    def count(self) -> int:
        return len(self.items)

    def ranges(self, num_layers: int) -> tuple[LayerRange, ...]:
        return self.items

    def __str__(self) -> str:
        return ", ".join(str(r) for r in self.items)


BlockSpec = Union[Split, Ranges]


@dataclass(frozen=True)
class Source:
    """Where a component comes from.

    kind "hf": ``ref`` is a Hub id, ``revision`` optional; kind "local": ``ref`` is a directory as
    written in the spec (relative to the spec file); kind "init": ``init`` holds the family and its
    config keys (common keys first, then family keys sorted).
    """

    kind: str
    ref: str = ""
    revision: str | None = None
    init: tuple[tuple[str, Any], ...] = ()

    @property
    def family(self) -> str | None:
        return dict(self.init).get("family") if self.kind == "init" else None

    def __str__(self) -> str:
        if self.kind == "hf":
            return f"hf:{self.ref}" + (f"@{self.revision}" if self.revision else "")
        if self.kind == "local":
            return self.ref
        return "init(" + ", ".join(f"{k}={v}" for k, v in self.init) + ")"


VOCAB_KINDS = ("pretrained", "new", "transplant")


@dataclass(frozen=True)
class Component:
    """``vocab``: how a pretrained component's embedding rows (and LM head) meet the hybrid's tokenizer:
    ``pretrained`` as they are (its tokenizer must be the hybrid's), ``new`` a fresh embedding with the
    head tied to it, ``transplant`` its rows re-indexed by token string into the hybrid's vocabulary."""

    name: str
    source: Source
    blocks: BlockSpec
    trust_remote_code: bool = False
    vocab: str = "pretrained"


@dataclass(frozen=True)
class Mixture:
    """How blocks mix components: learned (``search``), given (``fixed``) or from a file (``programmed``)."""

    mode: str
    alphas: tuple[tuple[float, ...], ...] | None = None  # fixed: N x M
    path: str | None = None  # programmed: file with alphas (relative to the spec)

    def __str__(self) -> str:
        from .expr import render_value

        if self.mode == "fixed":
            return f"fixed({render_value(self.alphas)})"
        if self.mode == "programmed":
            return f"programmed({render_value(self.path)})"
        return self.mode


BUDGET_MEASURES = ("flops_per_token", "params", "decode_params", "decode_state")


@dataclass(frozen=True)
class Budget:
    """An inference budget for the discretized hybrid: at most ``value`` of ``measure`` (a graph measure,
    additive over its nodes), or, when ``relative``, ``value`` times the continuous hybrid's."""

    measure: str  # one of BUDGET_MEASURES
    value: float
    relative: bool

    def limit(self, continuous: float) -> float:
        """The budget in the measure's units, given the continuous hybrid's cost."""
        return self.value * continuous if self.relative else self.value

    def amount(self) -> str | int | float:
        """As written in a canonical spec: ``0.6x``, or the number."""
        from .expr import render_value

        if self.relative:
            return f"{render_value(self.value)}x"
        return int(self.value) if float(self.value).is_integer() else self.value

    def __str__(self) -> str:
        return f"{self.measure} <= {self.amount()}"


@dataclass(frozen=True)
class Hybrid:
    width: int | None  # None: max over components
    projectors: tuple[tuple[str, str], ...]  # (component, kind) for every component, in order
    embeddings: str  # "mix" or a component name
    head: str  # "mix" or a component name
    mixture: Mixture
    budget: Budget | None = None  # what a discretize stage must fit

    def projector(self, component: str) -> str:
        return dict(self.projectors)[component]


@dataclass(frozen=True)
class Task:
    kind: str  # causal-lm | compress | classify | tag | match
    num_classes: int | None = None

    def __str__(self) -> str:
        return self.kind if self.num_classes is None else f"{self.kind}({self.num_classes})"


@dataclass(frozen=True)
class Distill:
    """A distill stage's loss: temperature^2 x KL(teacher || student) on the softmax of the logits at
    ``temperature``, per scored target, plus ``ce`` x the ordinary cross-entropy on the labels."""

    temperature: float = 2.0
    ce: float = 0.0

    def __str__(self) -> str:
        from .expr import render_value

        return f"kl(temperature={render_value(self.temperature)}, ce={render_value(self.ce)})"


DEFAULT_DISTILL = Distill()


@dataclass(frozen=True)
class Search:
    """An architecture search algorithm and its hyper-parameters."""

    algorithm: str  # darts | dash | gaea
    lr: float = 0.01
    alternate: bool = False
    tau: float | None = None  # dash only: Gumbel-softmax temperature
    heldout: float = 0.1  # alternate only: fraction of the training split the alpha steps read (the search split)
    tau_end: float | None = None  # dash only: the temperature at the stage's last step (None: tau throughout)
    warmup: int = 0  # joint only: the stage's first steps, in which the alphas do not move

    def tau_at(self, step: int, steps: int) -> float:
        """DASH's temperature at 0-based ``step`` of a ``steps``-step stage: ``tau``, or the exponential anneal
        tau * (tau_end / tau) ** (step / (steps - 1)) from tau at step 0 to tau_end at the last step."""
        tau = self.tau if self.tau is not None else 1.0
        if self.tau_end is None or steps <= 1:
            return tau
        return tau * (self.tau_end / tau) ** (min(step, steps - 1) / (steps - 1))

    def __str__(self) -> str:
        from .expr import render_value

        args = [f"lr={render_value(self.lr)}", f"alternate={render_value(self.alternate)}"]
        if self.alternate:
            args.append(f"heldout={render_value(self.heldout)}")
        if self.tau is not None:
            args.append(f"tau={render_value(self.tau)}")
        if self.tau_end is not None:
            args.append(f"tau_end={render_value(self.tau_end)}")
        if self.warmup:
            args.append(f"warmup={render_value(self.warmup)}")
        return f"{self.algorithm}({', '.join(args)})"


# A search stage without ``search:``. Measured (benchmarks/README.md, "Search on MAD selective copying" and
# "Pretrained components"): on MAD selective copying from scratch DASH landed on the best fixed mixture where
# DARTS (joint or alternating) and GAEA stopped a third of the way off; on pretrained components its regret
# (+0.006, positive in every seed) is a little above alternating DARTS's (+0.002), and ``warmup=`` of half
# the stage brings it to +0.003 (CI including 0) but costs the MAD search its landing: no schedule wins both.
DEFAULT_SEARCH = Search("dash", lr=0.05, alternate=False, tau=1.0)


@dataclass(frozen=True)
class DataSource:
    """A data expression with every parameter named, in signature order."""

    name: str
    args: tuple[tuple[str, Any], ...] = ()

    def arg(self, key: str, default: Any = None) -> Any:
        return dict(self.args).get(key, default)

    def __str__(self) -> str:
        from .expr import render_value

        return f"{self.name}({', '.join(f'{k}={render_value(v)}' for k, v in self.args)})"


@dataclass(frozen=True)
class Stage:
    """One stage of the training plan. Non-training kinds (rewind, discretize) ignore optimizer fields.

    A training stage's length is ``steps`` (optimizer steps) or ``epochs`` (passes over the training
    split; ``steps`` is then None). Batches are consecutive slices of an endless stream of reshuffled
    passes over the training split (``data.sampling.batch_indices``: every sequence once per pass), one
    global batch of ``batch_size x grad_accum x processes`` sequences per step, so ``epochs: E`` means
    the steps that cover E passes: ``ceil(E x training sequences / global batch)``, at least 1
    (``steps_for``; a fractional E ends mid-pass). In an alternating search the odd steps are alpha steps
    on held-out batches, so the weights see about half of that. The count is known once the data is
    built, so the (data-free) plan shows the epochs.
    """

    name: str
    kind: str
    train: tuple[str, ...] = ()
    data: DataSource | None = None
    search: Search | None = None
    init: str | None = None
    steps: int | None = 0  # None: given by ``epochs``
    distill: Distill | None = None  # distill stages: the loss against the teacher
    epochs: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: int = 0
    schedule: str = "linear"
    grad_clip: float | None = 1.0
    eval_every: int = 0  # 0: evaluate at the end of the stage only

    @property
    def trains(self) -> bool:
        return self.kind in TRAINING_KINDS

    def weight_budget(self) -> dict[str, Any]:
        """``steps`` (or ``epochs``) of a stage without search whose weights take as many optimizer steps as
        this stage's do: an alternating search updates the weights on its even steps only (0, 2, ...), so
        ``ceil(steps / 2)``, or half the epochs; any other stage, its own. What a sweep point or a component
        alone gets in place of a search stage, so that it trains exactly as much as the searched hybrid."""
        halved = self.search is not None and self.search.alternate
        if self.epochs is not None:
            return {"epochs": self.epochs / 2 if halved else self.epochs}
        return {"steps": (int(self.steps or 0) + 1) // 2 if halved else self.steps}

    def steps_for(self, sequences: int, processes: int = 1) -> int:
        """Optimizer steps of this stage on a training split of ``sequences`` sequences and ``processes``
        data-parallel processes: ``steps``, or ``ceil(epochs x sequences / global batch)`` (at least 1)."""
        if not self.trains:
            return 0
        if self.epochs is None:
            return self.steps or 0
        # the epochs as written (0.1 is 1/10, not the float just above it), so whole batches come out whole
        seen = Fraction(repr(float(self.epochs))) * max(int(sequences), 0)
        per_step = self.batch_size * self.grad_accum * max(int(processes), 1)
        return max(1, math.ceil(seen / per_step))


@dataclass(frozen=True)
class Train:
    seed: int = 0
    data_seed: int | None = None  # the data's own seed (None: ``seed``): synthetic examples and split membership
    checkpoint_every: int = 100  # optimizer steps; 0: only at stage ends
    baselines: bool = False  # also train every component alone with the same budget
    stages: tuple[Stage, ...] = ()

    @property
    def data_seed_or_seed(self) -> int:
        """The seed the data is built with: what it holds (synthetic sources) and which examples are train,
        valid and test. ``seed`` unless ``data_seed`` is given (runs of several seeds on one test split)."""
        return self.seed if self.data_seed is None else self.data_seed


@dataclass(frozen=True)
class Spec:
    name: str
    tokenizer: str
    components: tuple[Component, ...]
    hybrid: Hybrid
    task: Task = Task("causal-lm")
    train: Train = field(default_factory=Train)
    version: int = SPEC_VERSION

    @property
    def component_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def num_blocks(self) -> int:
        return self.components[0].blocks.count
