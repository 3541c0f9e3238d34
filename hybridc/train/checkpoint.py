"""Resumable checkpoints, written atomically and verified on load.

    checkpoints/step-N/
        model.safetensors   weights (tied weights stored once)
        optimizer.pt        optimizer, scheduler and search states (read with weights_only=True)
        state.json          where the run is (next stage, steps done in it, global step, selection)
                            and a manifest: the SHA-256 of every other file

A checkpoint is written into a temporary directory, every file fsynced, then renamed into place; a
directory without a valid manifest (a crash mid-write, a truncated file) is skipped with a message and
the previous checkpoint is used. Only the newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_model

from ..errors import RunError
from ..io import give_umask_mode

CHECKPOINTS = "checkpoints"
KEEP = 2


@dataclass(frozen=True)
class RunPosition:
    """Where a run stands: the next stage to run and how many of its steps are done."""

    stage_index: int
    stage_step: int
    global_step: int
    selection: list[str] | None = None  # the discretized hybrid's components per block
    extra: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete-looking checkpoint directories, newest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]), reverse=True)


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optim_state: dict[str, Any], position: RunPosition,
                    keep: int = KEEP, spec_digest: str | None = None) -> Path:
    """Write a checkpoint atomically; raises ``RunError`` (previous checkpoints intact) on I/O failure.
    ``spec_digest`` (of the canonical spec the run trains) is kept in state.json: a resume checks it."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{position.global_step}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    for stale in [*root.glob(".tmp-step-*"), *root.glob(".old-step-*")]:  # left by a crash (one process
        shutil.rmtree(stale, ignore_errors=True)                           # writes a run: RUN/.lock)
    try:
        tmp.mkdir()
        save_model(model, str(tmp / "model.safetensors"))
        give_umask_mode(tmp / "model.safetensors")
        torch.save(optim_state, tmp / "optimizer.pt")
        manifest = {name: _sha256(tmp / name) for name in ("model.safetensors", "optimizer.pt")}
        names = getattr(getattr(model, "graph", None), "names", None)
        state = {"position": asdict(position), "manifest": manifest, "spec": spec_digest,
                 "components": list(names) if names is not None else None}  # the order the weights assume
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        for name in ("model.safetensors", "optimizer.pt", "state.json"):
            _fsync(tmp / name)
        _fsync(tmp)
        if final.exists():  # a later stage at the same global step supersedes it
            old = root / f".old-{final.name}-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
        _fsync(root)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError ("unexpected pos")
        shutil.rmtree(tmp, ignore_errors=True)
        previous = next((p.name for p in checkpoint_dirs(run_dir) if p != final), None)
        text = str(err).strip()
        reason = getattr(err, "strerror", None) or (text.splitlines()[0] if text else "I/O error")
        raise RunError(f"could not write checkpoint {final.name}: {reason}",
                       f"free some disk space; the previous checkpoint ({previous or 'none'}) is intact "
                       "and --resume continues from it") from None
    for old in checkpoint_dirs(run_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_position(path: Path) -> RunPosition | None:
    """The checkpoint's position if every file matches its manifest, else None."""
    try:
        state = json.loads((path / "state.json").read_text())
        for name, digest in state["manifest"].items():
            if _sha256(path / name) != digest:
                return None
        return RunPosition(**state["position"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def checkpoint_spec_digest(path: Path) -> str | None:
    """The digest of the spec a checkpoint was written for (None: an older checkpoint that did not say)."""
    try:
        return json.loads((path / "state.json").read_text()).get("spec")
    except (OSError, ValueError, AttributeError):
        return None


def latest_checkpoint(run_dir: Path, warn: Callable[[str], None] = print) -> tuple[Path, RunPosition] | None:
    """The newest checkpoint that verifies; broken ones are reported and skipped."""
    for path in checkpoint_dirs(run_dir):
        position = read_position(path)
        if position is not None:
            return path, position
        warn(f"warning: checkpoint {path} is incomplete or corrupt (hash mismatch); using an older one")
    return None


def load_weights(model: torch.nn.Module, path: Path) -> tuple[list[str], list[str]]:
    """Load a safetensors file written by ``save_model`` into ``model`` (names of earlier releases renamed);
    (missing, unexpected) names, a tied weight saved once under its other name not counted missing."""
    from ..nn.hybrid import upgrade_keys

    state = upgrade_keys(load_file(str(path)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    loaded = {tensor.data_ptr() for name, tensor in model.state_dict().items() if name in state}
    current = model.state_dict()
    return [k for k in missing if current[k].data_ptr() not in loaded], list(unexpected)


def load_checkpoint(path: Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load weights into ``model`` (same structure, same components in the same order) and return the
    optimizer states."""
    try:
        saved = json.loads((path / "state.json").read_text()).get("components")
    except (OSError, ValueError, AttributeError):
        saved = None
    names = getattr(getattr(model, "graph", None), "names", None)
    if saved is not None and names is not None and list(saved) != list(names):
        raise RunError(f"checkpoint {path} holds components {', '.join(saved)}, in that order; the spec has "
                       f"{', '.join(names)}", "resume with the spec the run started with (the order of components "
                       "is part of the model)")
    missing, unexpected = load_weights(model, path / "model.safetensors")
    missing = [k for k in missing if not k.endswith("inv_freq")]
    if missing or unexpected:
        raise RunError(f"checkpoint {path} does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})",
                       "was the spec changed since the run started?")
    try:
        return torch.load(path / "optimizer.pt", weights_only=True)
    except Exception as err:  # weights_only refuses anything but tensors and plain containers
        raise RunError(f"checkpoint {path}: optimizer.pt was refused ({type(err).__name__}: "
                       f"{str(err).strip().splitlines()[0] if str(err).strip() else 'unreadable'})",
                       "it holds something other than optimizer state (hybridc never unpickles code); delete this "
                       "checkpoint directory and resume from an earlier one") from None
