"""Resumable checkpoints, written atomically and verified on load.

    checkpoints/step-N/
        model.safetensors   weights (tied weights stored once)
        optimizer.pt        optimizer, scheduler and search states (read with weights_only=True)
        state.json          where the run is (next stage, steps done in it, global step, selection)
                            and a manifest: the SHA-256 of every other file, and of state.json's own
                            contents besides the manifest (canonical JSON: ``state_digest``)

A checkpoint is written into a temporary directory, every file fsynced, then renamed into place. On
resume each checkpoint, newest first, must pass every check: its files match the manifest (which must name
the weights and the optimizer state: an empty manifest is damage), state.json means something for this
run's plan (``check_state``: the stage within the plan, the step within that stage, thread counts this
machine runs, a selection of the spec's components, integers where integers belong), and its weights are
the model's (``check_weights``: every tensor, with its shape and dtype). One that fails (a crash mid-write,
a truncated file, an edit) is skipped with a warning naming the file and the field, and the previous
checkpoint is used (``resume_from``); when none passes, the resume is refused (``DamagedCheckpoint``, exit
status 2) and nothing is written. A checkpoint written before state.json was hashed (its manifest names
only the other files) still resumes: its state.json is checked for meaning only. Only the newest ``keep``
checkpoints are kept.

Every file and directory here is reached through ``hybridc.io.guarded_dir`` from the run's directory: a
``step-N`` that is a link is not a checkpoint (never read, never pruned), a link or a FIFO among a
checkpoint's files is damage (never followed), and ``checkpoints/`` itself a link is refused.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors.torch import load_file, save_model

from ..errors import PathRefused, RunError, first_line
from ..io.guarded_dir import GuardedDir, guarded
from .rundir import CHECKPOINTS, checkpoint_names
from .threads import bounded, machine_cores

KEEP = 2
FORMAT = 2  # state.json's "checkpoint": 2 hashes state.json itself (absent: an earlier release's checkpoint)
FILES = ("model.safetensors", "optimizer.pt")  # the files beside state.json, each hashed in its manifest
STATE = "state.json"
AGAIN_HINT = ("nothing was changed; restore the files named from a copy, or, to train the run again from the "
              "beginning, move its checkpoints/ directory aside and resume")


class DamagedCheckpoint(RunError):
    """A checkpoint that fails its checks (hashes, the meaning of state.json, the weights): a resume skips it
    for an older one, and refuses (exit status 2) when none is left."""

    exit_code = 2


@dataclass(frozen=True)
class RunPosition:
    """Where a run stands: the next stage to run and how many of its steps are done."""

    stage_index: int
    stage_step: int
    global_step: int
    selection: list[str] | None = None  # the discretized hybrid's components per block
    extra: dict[str, Any] = field(default_factory=dict)


def _sha256(directory: GuardedDir, name: str) -> str:
    digest = hashlib.sha256()
    with directory.open_read(name) as f:  # (hybridc writes no links, FIFOs or devices here)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_dirs(run_dir: GuardedDir | Path) -> list[Path]:
    """Complete-looking checkpoint directories of a run, newest first (their paths, for messages; none when
    the run has no ``checkpoints/``). ``PathRefused`` when ``checkpoints`` is a link or not a directory."""
    with guarded(run_dir) as run:
        try:
            with run.child(CHECKPOINTS) as root:
                return [root.path / name for name in checkpoint_names(root)]
        except FileNotFoundError:
            return []


def save_checkpoint(run_dir: GuardedDir | Path, model: torch.nn.Module, optim_state: dict[str, Any],
                    position: RunPosition, keep: int = KEEP, spec_digest: str | None = None) -> Path:
    """Write a checkpoint atomically into ``run_dir``'s ``checkpoints/``; raises ``RunError`` (previous
    checkpoints intact) on I/O failure. ``spec_digest`` (of the canonical spec the run trains) is kept in
    state.json: a resume checks it. Returns the checkpoint's path."""
    with guarded(run_dir) as run, run.child(CHECKPOINTS, create=True) as root:
        final = f"step-{position.global_step}"
        tmp = f".tmp-{final}-{os.getpid()}"
        for stale in root.names():  # left by a crash (one process writes a run: RUN/.lock); only our directories
            if stale.startswith((".tmp-step-", ".old-step-")) and root.is_dir(stale):
                _remove_quietly(root, stale)
        try:
            root.mkdir(tmp)
            with root.child(tmp) as staged:
                save_model(model, staged.library_path("model.safetensors"))
                staged.give_umask_mode("model.safetensors")
                with staged.create("optimizer.pt") as f:
                    torch.save(optim_state, f)
                manifest = {name: _sha256(staged, name) for name in FILES}
                names = getattr(getattr(model, "graph", None), "names", None)
                state = {"checkpoint": FORMAT, "position": asdict(position), "spec": spec_digest,
                         "components": list(names) if names is not None else None}  # the order the weights assume
                state["manifest"] = {**manifest, STATE: state_digest(state)}
                staged.write_text(STATE, json.dumps(state, indent=2))
                for name in FILES:
                    staged.fsync(name)
                staged.fsync()
            there = root.lstat(final)
            if there is not None:  # a later stage at the same global step supersedes it
                if not root.is_dir(final):
                    raise root.refused(final, "a directory")
                old = f".old-{final}-{os.getpid()}"
                root.rename(final, old)
                root.rename(tmp, final)
                _remove_quietly(root, old)
            else:
                root.rename(tmp, final)
            root.fsync()
        except (OSError, RuntimeError, PathRefused) as err:  # torch.save reports a full disk as RuntimeError
            _remove_quietly(root, tmp)
            if isinstance(err, PathRefused):
                raise
            previous = next((name for name in checkpoint_names(root) if name != final), None)
            text = str(err).strip()
            reason = getattr(err, "strerror", None) or (text.splitlines()[0] if text else "I/O error")
            raise RunError(f"could not write checkpoint {final}: {reason}",
                           f"free some disk space; the previous checkpoint ({previous or 'none'}) is intact "
                           "and --resume continues from it") from None
        for old in checkpoint_names(root)[keep:]:
            _remove_quietly(root, old)
        return root.path / final


def _remove_quietly(root: GuardedDir, name: str) -> None:
    """Remove our directory ``name`` if it can be: one holding what hybridc did not write (a link, a FIFO) is
    left as it is, as is one that cannot be removed now (it is retried with the next checkpoint)."""
    try:
        root.remove_tree(name)
    except (OSError, PathRefused):
        pass


def state_digest(state: Mapping[str, Any]) -> str:
    """The SHA-256 of state.json's contents besides its manifest, as canonical JSON (sorted keys, no spaces):
    the manifest's entry for state.json (a file cannot hold its own hash; reformatting it changes nothing)."""
    rest = {k: v for k, v in state.items() if k != "manifest"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def verified_state(path: GuardedDir | Path) -> dict[str, Any]:
    """state.json of checkpoint ``path`` once every file matches the manifest's hash; ``DamagedCheckpoint``
    (naming the file and what is wrong) if not. state.json is covered when the checkpoint hashes it (every
    checkpoint written since ``FORMAT`` 2; an earlier one's state.json is then only checked for meaning)."""
    with guarded(path) as cp:
        return _verified_state(cp)


def _verified_state(cp: GuardedDir) -> dict[str, Any]:
    where = cp.path / STATE
    try:
        state = json.loads(cp.read_text(STATE))
    except FileNotFoundError:
        raise _damaged(where, "is missing (the checkpoint is incomplete)") from None
    except OSError as err:
        raise _damaged(where, _unreadable(err)) from None
    except (ValueError, RecursionError) as err:  # (RecursionError: nested past any state.json)
        raise _damaged(where, f"cannot be read as JSON ({first_line(err, type(err).__name__)})") from None
    if not isinstance(state, dict):
        raise _damaged(where, f"holds {_kind(state)}, not a JSON object")
    manifest = state.get("manifest")
    if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
        raise _damaged(where, f"'manifest' is {_shown(manifest)}, not a mapping of file names to SHA-256 digests")
    unknown = sorted(set(manifest) - {*FILES, STATE})
    if unknown:
        raise _damaged(where, f"'manifest' names {', '.join(map(repr, unknown))}, which is no file of a checkpoint")
    hashed = state.get("checkpoint") is not None  # this format hashes state.json too
    required = (*FILES, STATE) if hashed else FILES
    absent = [name for name in required if name not in manifest]
    if absent:
        raise _damaged(where, ("'manifest' is empty" if not manifest else f"'manifest' has no hash for "
                               f"{', '.join(absent)}") + ": nothing vouches for the checkpoint's files")
    for name, digest in manifest.items():
        if name == STATE:
            if state_digest(state) != digest:
                raise _damaged(where, "does not match its hash in the manifest (edited or corrupt)")
            continue
        try:
            actual = _sha256(cp, name)
        except OSError as err:
            raise _damaged(cp.path / name, _unreadable(err)) from None
        if actual != digest:
            raise _damaged(cp.path / name, "does not match its hash in state.json's manifest (incomplete or corrupt)")
    return state


def read_position(path: GuardedDir | Path) -> RunPosition | None:
    """The checkpoint's position if every file matches its manifest and the position has its fields, else None
    (what the position means for a run is ``check_state``'s)."""
    try:
        return RunPosition(**verified_state(path)["position"])
    except (DamagedCheckpoint, KeyError, TypeError):
        return None


def checkpoint_spec_digest(path: GuardedDir | Path) -> str | None:
    """The digest of the spec a checkpoint was written for (None: an older checkpoint that did not say)."""
    try:
        with guarded(path) as cp:
            return json.loads(cp.read_text(STATE)).get("spec")
    except (OSError, ValueError, AttributeError, RecursionError, PathRefused):
        return None


def latest_checkpoint(run_dir: GuardedDir | Path, warn: Callable[[str], None] = print,
                      plan: "ResumePlan | None" = None) -> tuple[Path, RunPosition] | None:
    """The newest checkpoint of the run (or teacher) directory ``run_dir`` that verifies (and, given the run's
    ``plan``, whose state.json passes ``check_state``); broken ones are reported and skipped. Its path (open it
    again by name, ``RUN/checkpoints/<path.name>``, to read it) and position."""
    with guarded(run_dir) as run:
        try:
            root = run.child(CHECKPOINTS)
        except FileNotFoundError:
            return None
        with root:
            for name in checkpoint_names(root):
                path = root.path / name
                try:
                    with root.child(name) as cp:
                        state = _verified_state(cp)
                    if plan is not None:
                        return path, check_state(state, plan, path)
                    return path, RunPosition(**state["position"])
                except (DamagedCheckpoint, KeyError, TypeError, PathRefused) as err:
                    reason = err if isinstance(err, (DamagedCheckpoint, PathRefused)) else \
                        f"{path / STATE}: no valid 'position'"
                    warn(f"warning: checkpoint {path} is incomplete or corrupt ({reason}); using an older one")
    return None


# ---- what a checkpoint may say --------------------------------------------------------------------
@dataclass(frozen=True)
class StageBound:
    """A stage of the plan as a checkpoint may stand in it."""

    name: str
    kind: str
    steps: int  # its optimizer steps (0: it trains nothing), before any --max-steps cap
    exact: bool = True  # False: an epochs stage, whose count depends on the processes: ``steps`` is at most


@dataclass(frozen=True)
class ResumePlan:
    """What a checkpoint of a run may hold: the plan's stages, the spec's components (in order), its blocks."""

    stages: tuple[StageBound, ...]
    components: tuple[str, ...]
    blocks: int


def resume_plan(rs, bundles: Mapping[Any, Any]) -> ResumePlan:
    """The ``ResumePlan`` of a resolved spec whose stages' data are ``bundles`` (data source -> DataBundle).
    An epochs stage's count depends on the processes it started on (recorded in its checkpoints): bounded
    here by its epochs at the smallest global batch, ``batch_size x grad_accum`` (one process)."""
    from fractions import Fraction

    stages = []
    for stage in rs.spec.train.stages:
        if stage.trains and stage.epochs is not None:
            data = bundles.get(stage.data) if stage.data is not None else None
            seen = Fraction(repr(float(stage.epochs))) * (len(data.train) if data is not None else 0)
            most = max(1, math.ceil(seen / (stage.batch_size * stage.grad_accum)))
            stages.append(StageBound(stage.name, stage.kind, most, exact=False))
        else:
            stages.append(StageBound(stage.name, stage.kind, stage.steps_for(0, 1)))
    return ResumePlan(tuple(stages), tuple(rs.names), int(rs.num_blocks))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unreadable(err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "is a symbolic link (hybridc writes none in a checkpoint, and follows none there)"
    return f"cannot be read ({err.strerror or err})"


def _damaged(where: Path, problem: str, hint: str | None = None) -> DamagedCheckpoint:
    return DamagedCheckpoint(f"{where}: {problem}", hint or "the checkpoint was damaged or edited; a resume "
                             "skips it and continues from an older one")


def check_state(state: Any, plan: ResumePlan, path: Path) -> RunPosition:
    """The position recorded in state.json of checkpoint ``path`` (a directory ``step-N``), once it means
    something for ``plan``; else ``DamagedCheckpoint`` naming the file and the field. Pure: reads no file.

    The stage index is within the plan (``len(stages)``: every stage done), the step within that stage's
    steps (0..steps; 0 where the stage trains nothing or the run is done), the global step the directory's N
    and no fewer than the stage's step, thread counts 1..``bounded`` (4 per core of this machine), the
    selection one of the spec's components per block exactly when a discretize stage is behind the position,
    the components the spec's; integers are integers (not booleans, numbers with a fraction or strings)."""
    where = path / STATE

    def bad(field_: str, value: Any, problem: str) -> DamagedCheckpoint:
        return _damaged(where, f"'{field_}' is {_shown(value)}: {problem}")

    def integer(field_: str, value: Any, low: int, high: int | None = None, meaning: str = "") -> int:
        if not _is_int(value):
            raise bad(field_, value, "not an integer" if value is None else f"{_kind(value)}, not an integer")
        if value < low or (high is not None and value > high):
            span = f"outside {low}..{high}" if high is not None else f"less than {low}"
            raise bad(field_, value, span + (f" ({meaning})" if meaning else ""))
        return value

    if not isinstance(state, dict):
        raise _damaged(where, f"holds {_kind(state)}, not a JSON object")
    position = state.get("position")
    if not isinstance(position, dict):
        raise bad("position", position, f"{_kind(position)}, not a mapping")
    known = {"stage_index", "stage_step", "global_step", "selection", "extra"}
    unknown = sorted(set(position) - known)
    if unknown:
        raise _damaged(where, f"'position' has unknown fields {', '.join(map(repr, unknown))}")
    for name in ("stage_index", "stage_step", "global_step"):
        if name not in position:
            raise _damaged(where, f"'position.{name}' is missing")

    stages = plan.stages
    k = integer("position.stage_index", position["stage_index"], 0, len(stages),
                f"the plan has {len(stages)} stage{'s' * (len(stages) != 1)}; {len(stages)}: every stage done")
    extra = position.get("extra", {})
    if not isinstance(extra, dict):
        raise bad("position.extra", extra, f"{_kind(extra)}, not a mapping")
    planned = None
    if "stage_steps" in extra:
        if k == len(stages) or not stages[k].steps:
            raise bad("position.extra.stage_steps", extra["stage_steps"],
                      "the position is in no stage that trains" if k == len(stages) else
                      f"stage {k} ('{stages[k].name}', {stages[k].kind}) trains nothing")
        stage = stages[k]
        if stage.exact:
            planned = integer("position.extra.stage_steps", extra["stage_steps"], stage.steps, stage.steps,
                              f"stage '{stage.name}' has {stage.steps} steps")
        else:
            planned = integer("position.extra.stage_steps", extra["stage_steps"], 1, stage.steps,
                              f"stage '{stage.name}' runs at most {stage.steps} steps over its epochs")
    if k == len(stages):
        integer("position.stage_step", position["stage_step"], 0, 0, "the run is past its last stage")
    else:
        stage = stages[k]
        high = planned if planned is not None else stage.steps
        integer("position.stage_step", position["stage_step"], 0, high,
                f"stage {k} ('{stage.name}', {stage.kind}) has {high} step{'s' * (high != 1)}")
    step = int(path.name[5:]) if path.name.startswith("step-") and path.name[5:].isdigit() else None
    global_step = integer("position.global_step", position["global_step"], position["stage_step"], None,
                          "no fewer than the steps done in the stage")
    if step is not None and global_step != step:
        raise bad("position.global_step", global_step, f"the checkpoint is {path.name}")
    if "threads" in extra:
        most = bounded(10 ** 9)
        integer("position.extra.threads", extra["threads"], 1, most,
                f"at most 4 threads per core: {machine_cores()} core{'s' * (machine_cores() != 1)} here")
    if "metrics" in extra:
        integer("position.extra.metrics", extra["metrics"], 0, None, "the number of metrics.jsonl events")

    selection = position.get("selection")
    discretized = any(s.kind == "discretize" for s in stages[:k])
    if selection is not None:
        if not discretized:
            raise bad("position.selection", selection, "no discretize stage comes before the position (stage "
                      f"{k}): the model is still the continuous hybrid")
        if not isinstance(selection, list) or not all(isinstance(m, str) for m in selection):
            raise bad("position.selection", selection, f"{_kind(selection)}, not a list of component names")
        if len(selection) != plan.blocks:
            raise bad("position.selection", selection, f"{len(selection)} entries; the hybrid has {plan.blocks} "
                      f"block{'s' * (plan.blocks != 1)}, one component each")
        strange = [m for m in selection if m not in plan.components]
        if strange:
            raise bad("position.selection", selection, f"{strange[0]!r} is no component of the spec "
                      f"({', '.join(plan.components)})")
    elif discretized:
        raise _damaged(where, f"'position.selection' is missing: a discretize stage comes before stage {k}, so "
                       "the checkpoint holds a discretized hybrid")
    spec = state.get("spec")
    if spec is not None and not isinstance(spec, str):
        raise bad("spec", spec, f"{_kind(spec)}, not a spec digest")
    components = state.get("components")
    if components is not None and (not isinstance(components, list)
                                   or not all(isinstance(m, str) for m in components)):
        raise bad("components", components, f"{_kind(components)}, not a list of component names")
    if components is not None and spec is not None and tuple(components) != plan.components:
        # (the spec digest, checked before a resume, says the components are the spec's, in its order)
        raise bad("components", components, f"the spec it records has {', '.join(plan.components)}")
    return RunPosition(k, position["stage_step"], global_step, selection, dict(extra))


def check_weights(path: Path, model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``state`` (read from checkpoint ``path``'s model.safetensors, names upgraded) holds every tensor of
    ``model`` (a tied weight once, under either name; rotary frequencies are recomputed) with the model's
    shape and dtype, and nothing else; else ``DamagedCheckpoint`` naming the tensor."""
    where = path / "model.safetensors"
    own = model.state_dict()
    hint = "was the checkpoint edited? a resume skips it and continues from an older one"
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise _damaged(where, f"holds tensor '{unexpected[0]}', which the model does not have"
                       + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""), hint)
    for name, tensor in state.items():
        mine = own[name]
        if tuple(tensor.shape) != tuple(mine.shape) or tensor.dtype != mine.dtype:
            raise _damaged(where, f"tensor '{name}' is {list(tensor.shape)} {str(tensor.dtype)[6:]}; the model's is "
                           f"{list(mine.shape)} {str(mine.dtype)[6:]}", hint)
    present = {own[k].data_ptr() for k in state if own[k].numel()}
    missing = [k for k, t in own.items() if k not in state and not k.endswith("inv_freq")
               and not (t.numel() and t.data_ptr() in present)]
    if missing:
        raise _damaged(where, f"has no tensor '{missing[0]}'" + (f" (nor {len(missing) - 1} more of the model's)"
                                                              if len(missing) > 1 else ""), hint)


def load_weights(model: torch.nn.Module, path: Path) -> tuple[list[str], list[str]]:
    """Load a safetensors file written by ``save_model`` into ``model`` (names of earlier releases renamed);
    (missing, unexpected) names, a tied weight saved once under its other name not counted missing."""
    from ..models.names import upgrade_keys

    state = upgrade_keys(load_file(str(path)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    loaded = {tensor.data_ptr() for name, tensor in model.state_dict().items() if name in state}
    current = model.state_dict()
    return [k for k in missing if current[k].data_ptr() not in loaded], list(unexpected)


def load_checkpoint(path: GuardedDir | Path, model: torch.nn.Module,
                    state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load weights into ``model`` (same structure, same components in the same order) and return the
    optimizer states; weights that do not fit (``check_weights``: the model is then left as it was) or an
    optimizer.pt that is not plain optimizer state are a ``DamagedCheckpoint``. ``state``: its state.json as
    ``verified_state`` returned it (read here when not given). Every file is opened without following a link."""
    from ..models.names import upgrade_keys

    with guarded(path) as cp:
        path = cp.path
        if state is None:
            try:
                state = json.loads(cp.read_text(STATE))
            except (OSError, ValueError, RecursionError):
                state = None
        saved = state.get("components") if isinstance(state, dict) else None
        names = getattr(getattr(model, "graph", None), "names", None)
        if saved is not None and names is not None and list(saved) != list(names):
            raise RunError(f"checkpoint {path} holds components {', '.join(map(str, saved))}, in that order; the "
                           f"spec has {', '.join(names)}", "resume with the spec the run started with (the order "
                           "of components is part of the model)")
        try:
            with cp.opened_path("model.safetensors") as weights_file:
                weights = upgrade_keys(load_file(weights_file))
        except OSError as err:
            raise _damaged(path / "model.safetensors", _unreadable(err)) from None
        except Exception as err:  # safetensors' own error for a file that is not one
            raise _damaged(path / "model.safetensors",
                           f"cannot be read as safetensors ({first_line(err, type(err).__name__)})") from None
        check_weights(path, model, weights)
        model.load_state_dict(weights, strict=False)
        try:
            with cp.open_read("optimizer.pt") as f:
                return torch.load(f, weights_only=True)
        except Exception as err:  # weights_only refuses anything but tensors and plain containers
            raise DamagedCheckpoint(f"checkpoint {path}: optimizer.pt was refused ({type(err).__name__}: "
                                    f"{first_line(err, 'unreadable')})",
                                    "it holds something other than optimizer state (hybridc never unpickles "
                                    "code); a resume skips this checkpoint for an earlier one") from None


def resume_from(run_dir: GuardedDir | Path, plan: ResumePlan,
                build: Callable[[Path, list[str] | None], torch.nn.Module],
                warn: Callable[[str], None] = print) -> tuple[Path, RunPosition, torch.nn.Module, dict] | None:
    """(checkpoint, position, model, optimizer states) of the newest checkpoint of ``run_dir`` that passes
    every check (``verified_state``, ``check_state``, ``load_checkpoint``), its weights loaded into
    ``build(checkpoint, selection)``. A checkpoint that fails is reported through ``warn`` and skipped for
    the previous one, as a hash mismatch always was; None without checkpoints; ``DamagedCheckpoint`` (exit
    status 2, naming each checkpoint's problem) when every one fails, before anything is written."""
    problems = []
    with guarded(run_dir) as run:
        try:
            root = run.child(CHECKPOINTS)
        except FileNotFoundError:
            return None
        with root:
            for name in checkpoint_names(root):
                path = root.path / name
                try:
                    with root.child(name) as cp:
                        state = _verified_state(cp)
                        position = check_state(state, plan, path)
                        model = build(path, position.selection)
                        optim_state = load_checkpoint(cp, model, state)
                except (DamagedCheckpoint, PathRefused) as err:
                    problems.append(str(err))  # (each names its file: RUN/checkpoints/step-N/...)
                    warn(f"warning: checkpoint {name} is damaged, skipped: {err}")
                    continue
                if problems:
                    warn(f"warning: resuming from {name}, the newest checkpoint that passes every check "
                         f"({len(problems)} newer one{'s' * (len(problems) != 1)} skipped)")
                return path, position, model, optim_state
            if problems:
                raise DamagedCheckpoint(f"every checkpoint in {root.path} is incomplete or damaged, so there is no "
                                        "earlier one to fall back to: " + "; ".join(problems), AGAIN_HINT)
    return None
