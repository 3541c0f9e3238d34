"""``hybridc train``: run a spec's training plan and leave a run directory anyone can inspect.

    runs/<name>/spec.yaml        the spec, verbatim
                spec.lock.yaml   canonical spec + resolved components
                plan.json        the training plan
                graph.dot        the block graph
                metrics.jsonl    one event per line (train steps, evaluations, stage boundaries)
                checkpoints/     step-N/ (atomic, verified; --resume continues from the newest)
                final/           save_pretrained layout + README.md model card
                plots/           loss.png, alphas.png
                teacher/         checkpoints/step-N/: the continuous hybrid distill stages learn from
                baselines/<m>/   each component trained alone with the same budget (train.baselines)

Every file and directory of a run is opened, written, renamed and removed through ``hybridc.io.guarded_dir``,
from the run directory's open descriptor: nothing below it is followed through a link, and a link, a FIFO or
a directory where the run writes is refused (``PathRefused``, exit status 2) before anything is written.
"""

from __future__ import annotations

import atexit
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..api import Compiled, compile_resolved
from ..data import DataBundle, build_data, load_tokenizer
from ..errors import Diagnostic, Interrupted, RunError, SpecError
from ..io.guarded_dir import GuardedDir
from ..models.hybrid import HybridModel, lower
from ..spec.emit import render_data, spec_to_data
from ..spec.frontend import ResolvedSpec, lock_data
from ..spec.model import DataSource, Stage
from .checkpoint import RunPosition, resume_from, resume_plan, save_checkpoint
from .loop import Parallel, StageOptimizers, build_optimizers, evaluate, freeze_for, split_roles, train_steps
from .metrics import MetricsLog
from .plots import plot_alphas, plot_losses
from .launch import check_precision
from .progress import Progress, log_every
from .rundir import run_directory
from .threads import bounded, choose_threads, fixed_threads
from .tracking import Trackers, flat_config, logging_dir, parse_report_to
from .finish import TOKENIZED_SOURCES, Finishing, RunResult, eval_batch_size
from .placement import Placement, end_process_group
from .run_directory import RunDirectory
from .stage_transforms import StageTransforms
from .teacher import TeacherKeeping
from .sharding import average_replicated_grads, full_optimizer_state, is_sharded, load_sharded_optimizer_state, reshard


@dataclass(frozen=True)
class TrainOptions:
    out_dir: Path | None = None
    resume: bool = False
    max_steps: int | None = None
    device: str = "cpu"
    mixed_precision: str = "no"  # no | bf16 | fp16 (Accelerate's autocast)
    scan: str = "auto"  # Mamba selective-scan backend: auto | fused | chunked | reference | transformers
    sharding: str = "ddp"  # with several processes: ddp | fsdp (see sharding.py)
    quiet: bool = False
    eval_batches: int = 16  # validation batches per evaluation (the test split is always evaluated whole)
    label: str | None = None  # what the run is, in its progress lines ("attn alone"; the main run: none)
    report_to: tuple[str, ...] = ()  # experiment trackers (tracking.py): tensorboard, wandb, mlflow, ...


class StopSignals:
    """While a run trains (``stepping``), SIGINT and SIGTERM ask it to stop at the next step boundary
    (after a checkpoint) instead of killing it; a second signal stops at once. Outside the training steps
    (building data, evaluating, saving) there is no step to finish: the first signal stops at once, the
    last checkpoint standing. Restores the handlers after."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.received = False
        self.stepping = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received or not self.stepping:  # the second time, or nothing to finish: stop now
            raise KeyboardInterrupt
        self.received = True

    def __enter__(self) -> "StopSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for number, handler in self._previous.items():
            signal.signal(number, handler)


class Run(RunDirectory, TeacherKeeping, Placement, StageTransforms, Finishing):
    """One execution of a training plan (mutable while it runs; its outputs are files)."""

    def __init__(self, rs: ResolvedSpec, options: TrainOptions, say=print, within: GuardedDir | None = None,
                 built: Mapping[DataSource, DataBundle] | None = None):
        """``within``: the directory that holds this run's (a baseline's parent run: its ``baselines/``), which
        ``options.out_dir`` names as a subdirectory; None: ``options.out_dir`` is the user's path. ``built``: data
        already built for sources of this spec, with its task and data seed (a baseline takes its hybrid's;
        ``hybridc lra`` builds each task's once for every learning rate)."""
        self.built = dict(built or {})
        self.rs = rs
        self.spec = rs.spec
        self.options = options
        self.say = say
        self.run_dir = run_directory(options.out_dir, rs.spec.name)
        self.within = within
        self.dir: GuardedDir | None = None  # the run directory, open while the run runs (every process)
        self.compiled: Compiled = compile_resolved(rs)
        if options.device == "cuda" and not torch.cuda.is_available():
            raise RunError("--device cuda, but no CUDA device is available", "use --device cpu")
        check_precision(options.device, options.mixed_precision)
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        # Accelerate keeps one state per process and refuses a second precision; runs made one after another
        # in one process (baselines, sweep points, the Python API) each choose theirs. The process group
        # (PartialState) is kept.
        AcceleratorState._reset_state(reset_partial_state=False)
        # Accelerate sets up the device and, under torchrun / accelerate launch, the process group (gloo on
        # CPU, NCCL on GPU); it runs backward (scaling under fp16), autocast and gradient clipping.
        tracking = {}
        if options.report_to:  # local trackers (TensorBoard, ...) write under RUN/logs
            from accelerate.utils import ProjectConfiguration

            tracking = dict(log_with=list(options.report_to), project_config=ProjectConfiguration(
                project_dir=str(self.run_dir), logging_dir=str(logging_dir(self.run_dir))))
        self.accelerator = Accelerator(cpu=options.device == "cpu", mixed_precision=options.mixed_precision,
                                       **tracking)
        self.trackers: Trackers | None = None  # started once the run directory is ours
        self.device = self.accelerator.device
        self.main = self.accelerator.is_main_process
        world = self.accelerator.num_processes
        if world > 1:  # one handler per process, however many runs it makes (baselines, sweep points)
            atexit.unregister(end_process_group)
            atexit.register(end_process_group)
        self.parallel = Parallel(world, self.accelerator.process_index,
                                 (lambda t: self.accelerator.reduce(t, "sum")) if world > 1 else (lambda t: t))
        if not self.main:  # only the main process writes the run directory and talks
            self.say = lambda _: None
        self.metrics = MetricsLog(self.run_dir, enabled=self.main)  # (bound to self.dir once it is open)
        self.seed = self.spec.train.seed
        self.spec_digest = spec_digest(lock_data(rs))
        self.teacher: HybridModel | None = None  # the continuous hybrid, frozen, while distill stages remain
        self._lock = None  # the open RUN/.lock while this process trains the run (main process only)
        self._lock_created = False  # ... a file this process created (the only lock it ever removes)
        self._fresh = False  # this process started the run in an empty (or new) directory
        self._created = False  # ... which it created
        self.log_every = log_every(os.environ)  # HYBRIDC_LOG_EVERY (checked before anything runs)
        self.base_threads = torch.get_num_threads()
        fixed_threads(os.environ)  # HYBRIDC_THREADS / OMP_NUM_THREADS checked before anything runs

    # ---- set-up -------------------------------------------------------------------------------
    def note(self, text: str) -> None:
        """What the run is doing before its first step (data, weights): said unless --quiet."""
        if not self.options.quiet:
            self.say(text)


    def load_data(self) -> dict[DataSource, DataBundle]:
        """Every stage's data, built before any weight is loaded (errors come early)."""
        tokenizer = None
        bundles: dict[DataSource, DataBundle] = {}
        for i, stage in enumerate(self.spec.train.stages):
            if stage.data is None or stage.data in bundles:
                continue
            if stage.data in self.built:
                bundles[stage.data] = self.built[stage.data]
                continue
            users = stage_names(self.spec.train.stages, stage.data)
            self.note(f"preparing data for {users}: {render_data(stage.data)}")
            if tokenizer is None and stage.data.name in TOKENIZED_SOURCES:
                tokenizer = load_tokenizer(self.rs)
            location = self.rs.source_map.at("train", "stages", i, "data")
            bundle = build_data(stage.data, task=self.spec.task, tokenizer=tokenizer,
                                seed=self.spec.train.data_seed_or_seed,
                                base_dir=self.rs.base_dir, location=location)
            if bundle.max_token_id >= self.rs.vocab_size:
                raise SpecError([Diagnostic(location, f"the data uses token id {bundle.max_token_id}, outside the "
                                            f"hybrid's vocabulary of {self.rs.vocab_size}",
                                            "use the components' tokenizer or larger vocabularies")])
            bundles[stage.data] = bundle
        return bundles

    def steps_of(self, stage: Stage, data: DataBundle | None = None, planned: int | None = None) -> int:
        """The stage's optimizer steps: ``steps``, or its ``epochs`` over ``data``'s training split with
        this run's global batch (see ``Stage.steps_for``); ``--max-steps`` caps either. ``planned``: the
        uncapped count recorded when the stage started (a resumed epochs stage keeps it, so its schedule
        does not change if the number of processes did)."""
        if not stage.trains:
            return 0
        steps = planned if planned is not None else self.planned_steps(stage, data)
        return min(steps, self.options.max_steps) if self.options.max_steps is not None else steps

    def planned_steps(self, stage: Stage, data: DataBundle | None) -> int:
        """``steps_of`` before the ``--max-steps`` cap."""
        if stage.epochs is not None and data is None:
            raise ValueError(f"stage '{stage.name}' gives epochs: its steps depend on its data")
        return stage.steps_for(len(data.train) if data is not None else 0, self.parallel.world)

    # ---- the run ------------------------------------------------------------------------------
    def start(self, bundles) -> tuple[HybridModel, RunPosition, dict | None]:
        def build(path: Path, selection: list[str] | None) -> HybridModel:
            self.note(f"loading checkpoint {path.name}")
            return lower(self.rs, selection=selection, pretrained=False)

        # the newest checkpoint that passes every check (hashes, state.json's meaning, weights); damaged ones
        # are skipped with a warning, and when none is left the resume is refused before anything is written
        if self.options.resume:
            self.check_resumed_data(bundles)
        found = (resume_from(self.dir, resume_plan(self.rs, bundles), build, warn=self.say)
                 if self.options.resume else None)
        if found is None:
            if self.options.resume and self.metrics.exists():
                self.metrics.truncate(0)
            self.note(f"loading components: {describe_components(self.spec)}")
            return self.place(lower(self.rs)), RunPosition(0, 0, 0), None
        path, position, model, optim_state = found
        if self.needs_teacher(position):  # (before anything is written: a run without its teacher stops here)
            self.distill_teacher()
        self.metrics.truncate(int(position.extra.get("metrics", 0)))
        self.say(f"resuming from {path.name} (stage {position.stage_index + 1}, step {position.stage_step})")
        return self.place(model), position, optim_state

    def check_resumed_data(self, bundles) -> None:
        """A resumed run trains on the splits it started with: each stage it began recorded its data's identity
        (``data.build.data_identity``), and data that is not that now (a file edited since, or a run begun by a
        hybridc that keyed splits by the path as written) is refused before anything is loaded or written: its
        splits would not be the run's, and test examples could be trained on."""
        stages = self.spec.train.stages
        for event in self.metrics.records():
            k = event.get("stage_index")
            if event.get("event") != "stage" or not isinstance(k, int) or not 0 <= k < len(stages):
                continue
            data = stages[k].data
            if data is None or data not in bundles:
                continue
            recorded = event.get("data_identity")
            if recorded == bundles[data].source:
                continue
            why = ("the run began under a hybridc that keyed data splits by the path as written, not by the data "
                   "itself" if recorded is None else "the data is not what the run began with (a file changed)")
            from ..data import short_form

            raise RunError(f"cannot resume {self.run_dir}: stage '{stages[k].name}' would split "
                           f"{short_form(data)} otherwise than it did: {why}",
                           "start a new run with -o (or resume with the data, and the hybridc, it began with)")

    def checkpoint(self, model: HybridModel, optim: StageOptimizers | None, position: RunPosition) -> None:
        """The main process writes the weights and optimizer state. Under FSDP both are gathered whole
        first (a collective; only the main process builds the plain model), so checkpoints always have
        the single-process layout."""
        try:
            if is_sharded(model):
                sharded = model
                optim_state = (optim.state_dict(lambda weights: full_optimizer_state(sharded, weights))
                               if optim is not None else {})
                model = self.unshard(model, here=self.main)
            else:
                optim_state = optim.state_dict() if optim is not None else {}
            if self.main:
                extra = dict(position.extra, metrics=len(self.metrics.records()))
                position = RunPosition(position.stage_index, position.stage_step, position.global_step,
                                       list(model.graph.selection) if model.graph.selection else None, extra)
                save_checkpoint(self.dir, model, optim_state, position, spec_digest=self.spec_digest)
        finally:
            self.accelerator.wait_for_everyone()

    def execute(self) -> RunResult:
        try:
            with StopSignals() as self.signals:
                return self._execute()
        except BaseException:
            self.end_trackers()  # (before a run that trained nothing removes what it wrote, RUN/logs too)
            self.forget_if_nothing_trained()
            raise
        finally:
            self.end_trackers()
            torch.set_num_threads(self.base_threads)  # (stages may have run on fewer)
            if self._lock is not None:
                self._lock.close()  # releases the lock
                self._lock = None
            if self.dir is not None:
                self.dir.close()
                self.dir = None

    def end_trackers(self) -> None:
        """Flush and close the experiment trackers (once)."""
        trackers, self.trackers = self.trackers, None
        if trackers is not None:
            self.metrics.listener = None
            trackers.end()


    def stop_requested(self) -> bool:
        """A SIGINT/SIGTERM arrived in any process (all processes stop at the same step)."""
        flag = torch.tensor([1.0 if self.signals.received else 0.0], device=self.device)
        return bool(self.parallel.reduce(flag).item() > 0)

    def _execute(self) -> RunResult:
        self.prepare_directory()
        if self.options.report_to:
            self.trackers = Trackers(self.accelerator, self.spec.name, flat_config(spec_to_data(self.spec)),
                                     self.rs.names)
            self.metrics.listener = self.trackers.log
        bundles = self.load_data()
        model, position, optim_state = self.start(bundles)
        stages = self.spec.train.stages
        global_step = position.global_step
        progress = Progress(enabled=not self.options.quiet and self.main, every=self.log_every)
        with progress:
            for k in range(position.stage_index, len(stages)):
                stage = stages[k]
                start = position.stage_step if k == position.stage_index else 0
                if stage.kind == "discretize":
                    self.keep_teacher(model, k, global_step)
                    model = self.discretize(model)
                    self.metrics.write(event="discretize", stage=stage.name, stage_index=k, global_step=global_step,
                                       selection=list(model.graph.selection))
                elif stage.kind == "rewind":
                    self.rewind(model)
                    self.metrics.write(event="rewind", stage=stage.name, stage_index=k, global_step=global_step)
                else:
                    if start == 0 and stage.init is not None:
                        self.load_stage_init(model, stage)
                    resumed = k == position.stage_index and start > 0
                    model, global_step = self.train_stage(model, k, stage, start, global_step, bundles[stage.data],
                                                          optim_state if k == position.stage_index else None,
                                                          progress, position.extra.get("stage_steps") if resumed else None,
                                                          position.extra.get("threads") if resumed else None)
                optim_state = None
                self.checkpoint(model, None, RunPosition(k + 1, 0, global_step))
                if stage.kind == "distill":
                    self.release_teacher(k)
        return self.finish(model, bundles)

    def train_stage(self, model: HybridModel, k: int, stage: Stage, start: int, global_step: int, data: DataBundle,
                    optim_state: dict | None, progress: Progress, planned: int | None = None,
                    threads: int | None = None) -> tuple[HybridModel, int]:
        """Train one stage; returns the model (a new, unsharded one after an FSDP stage) and the global step.
        ``planned`` and ``threads``: the stage's uncapped step count and thread count recorded in the
        checkpoint it resumes from (a resumed stage runs on the threads it started on: bit-identical)."""
        planned = planned if planned is not None else self.planned_steps(stage, data)
        steps = self.steps_of(stage, data, planned)
        freeze_for(model, stage)
        forward = self.wrap(model)  # before the optimizers: FSDP replaces the parameters with shards
        optim = build_optimizers(model, stage, steps)
        if optim_state:
            if is_sharded(model) and optim.weights is not None and optim_state.get("weights") is not None:
                load_sharded_optimizer_state(model, optim.weights, optim_state["weights"])
                optim_state = {**optim_state, "weights": None}
            optim.load_state_dict(optim_state)
        threads = self.set_threads(stage, threads)
        if start == 0:
            self.metrics.write(event="stage", stage=stage.name, stage_index=k, kind=stage.kind, global_step=global_step,
                               steps=steps, epochs=stage.epochs, train=list(stage.train), data=render_data(stage.data),
                               components=list(self.rs.names),  # the column order of the alphas below
                               splits=split_roles(stage, data, self.seed), threads=threads,
                               data_identity=data.source)  # what its splits are keyed by (checked on resume)
        every = self.spec.train.checkpoint_every
        label = f" ({self.options.label})" if self.options.label else ""
        task = progress.stage(f"{k + 1}/{len(self.spec.train.stages)} {stage.name}{label}", total=steps, completed=start)
        discretized = model.graph.discretized
        after_backward = None
        if is_sharded(model):  # FSDP leaves the (replicated) alphas' gradients to us
            after_backward = lambda: average_replicated_grads(model, self.parallel.reduce, self.parallel.world)  # noqa: E731
        self.signals.stepping = True
        teacher = self.distill_teacher() if stage.kind == "distill" else None
        for result in train_steps(model, stage, steps, start, data, optim, seed=self.seed, device=self.device,
                                  backward=self.accelerator.backward, clip=self.accelerator.clip_grad_norm_,
                                  forward=forward, parallel=self.parallel, autocast=self.accelerator.autocast,
                                  after_backward=after_backward, teacher=teacher):
            global_step += 1
            done = result.step + 1
            alphas = None if discretized else [[round(a, 6) for a in row] for row in model.alphas().tolist()]
            budgeted = optim.search is not None and optim.search.bound is not None
            self.metrics.write(event="train", stage=stage.name, stage_index=k, step=done, global_step=global_step,
                               kind=result.kind, loss=result.loss, lr=result.lr, alphas=alphas,
                               tokens_per_s=result.tokens / max(result.seconds, 1e-9),
                               **({"expected_cost": optim.search.expected_cost(),  # E[cost] / the budget's limit
                                   "budget_multiplier": optim.search.multiplier} if budgeted else {}))
            progress.update(task, done, loss=result.loss, alphas=alphas, lr=result.lr)
            if stage.eval_every and done % stage.eval_every == 0 and done < steps:
                self.log_eval(model, stage, k, global_step, data, "valid")
            here = RunPosition(k, done, global_step, extra={"stage_steps": planned, "threads": threads})
            if every and global_step % every == 0 and done < steps:
                self.checkpoint(model, optim, here)
            if self.stop_requested():
                self.checkpoint(model, optim, here)
                raise Interrupted(f"stopped by a signal in stage '{stage.name}' after step {done}; "
                                  f"checkpoint step-{global_step} written",
                                  f"continue with: hybridc train <spec> -o {self.run_dir} --resume")
        self.signals.stepping = False
        progress.end(task)
        valid = self.log_eval(model, stage, k, global_step, data, "valid")
        self.say(f"stage '{stage.name}': {steps} steps, valid loss {valid['loss']:.4f}"
                 + (f", accuracy {valid['accuracy']:.3f}" if not math.isnan(valid["accuracy"]) else ""))
        self.plots()
        if is_sharded(model):
            model = self.unshard(model)
        return model, global_step

    def set_threads(self, stage: Stage, recorded: int | None = None) -> int:
        """torch's thread count for this stage (``threads.choose_threads``: fewer beside busy processes),
        or the ``recorded`` one of the stage being resumed; returns it."""
        if recorded is not None:
            threads, why = bounded(recorded), "as when the stage started"
        else:
            threads, why = choose_threads(self.base_threads)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        if threads != self.base_threads:
            self.note(f"stage '{stage.name}': {threads} thread{'s' * (threads != 1)} ({why}; HYBRIDC_THREADS=N fixes it)")
        return threads

    def log_eval(self, model, stage: Stage, k: int, global_step: int, data: DataBundle, split: str) -> dict:
        result = evaluate(model, getattr(data, split), eval_batch_size(stage), self.device,
                          max_batches=self.options.eval_batches if split == "valid" else None)
        if is_sharded(model):  # an evaluation has no backward to free the root unit's gathered weights
            reshard(model)
        self.metrics.write(event="eval", split=split, stage=stage.name, stage_index=k, global_step=global_step, **result)
        return result

    def plots(self) -> None:
        if not self.main:
            return
        import io

        records = self.metrics.records()
        with self.dir.child("plots", create=True) as plots:
            for name, draw in (("loss.png", lambda out: plot_losses(records, out)),
                               ("alphas.png", lambda out: plot_alphas(records, list(self.rs.names), out))):
                image = io.BytesIO()
                if draw(image) is not None:
                    plots.write_bytes(name, image.getvalue())

    # ---- the end ------------------------------------------------------------------------------


def spec_digest(lock: dict) -> str:
    """SHA-256 of a lock's canonical spec (components in their order): what a checkpoint was trained for."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(lock["spec"], sort_keys=True).encode()).hexdigest()


def stage_names(stages, data: DataSource) -> str:
    """``stage 'align'`` or ``stages 'align', 'search'``: the stages that train on ``data``."""
    names = [f"'{s.name}'" for s in stages if s.data == data]
    return ("stages " if len(names) > 1 else "stage ") + ", ".join(names)


def describe_components(spec) -> str:
    """``neo (hf:EleutherAI/gpt-neo-125m), ssm (new mamba)``: where each component's weights come from."""
    return ", ".join(f"{c.name} (new {c.source.family})" if c.source.kind == "init" else f"{c.name} ({c.source})"
                     for c in spec.components)


def train(rs: ResolvedSpec, options: TrainOptions, say=print, within: GuardedDir | None = None,
          built: Mapping[DataSource, DataBundle] | None = None) -> RunResult:
    """Run ``rs``'s training plan (see module doc). ``within``: the open directory that holds the run directory
    (``options.out_dir`` names it there), for runs an experiment makes inside its own output directory;
    ``built``: data already built for its sources (``Run``)."""
    check_scan_option(options.scan)
    options = replace(options, report_to=parse_report_to(options.report_to))  # (unknown or missing: said now)
    return Run(rs, options, say=say, within=within, built=built).execute()


def check_scan_option(scan: str) -> None:
    """``--scan fused`` asks for hybridc's CPU kernels by name: when they cannot be built here, say so before
    anything runs (``auto`` falls back to the chunked scan instead)."""
    if scan != "fused":
        return
    from ..kernels import library as kernels

    if not kernels.available():
        raise RunError(f"--scan fused: hybridc's CPU kernels are not available here ({kernels.unavailable_reason()})",
                       "use --scan auto (the chunked PyTorch scan when the kernels cannot be built) or --scan "
                       "chunked, or install a C compiler (gcc or clang)")
