"""Discretization of a trained hybrid, and export of the result.

``discretize_model`` applies the graph transform (``hybridc.graph.selection``) to a model's current
alphas and carries every kept weight over. ``export`` writes the discretized hybrid as a standalone model
directory (``HybridModel.from_pretrained`` loads it; its config holds the discretized canonical spec) or,
when every block selected the same component, the embedding and head are that component's and no projector
is left, as that component in its own family's plain Hugging Face format (``AutoModelForCausalLM`` loads it
without hybridc).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..components.adapters import build_model, load_adapter
from ..components.registry import get_family
from ..data.tokenizer import save_tokenizer, set_generation_ids
from ..errors import CompileError, RunError
from ..graph.budget import selection_for
from ..io.guarded_dir import GuardedDir
from ..io import PathRefused
from .card import model_card
from .hybrid import HybridModel, lower
from .format import EXPORT_RECORD


def discretize_model(model: HybridModel, selection: list[str] | None = None) -> HybridModel:
    """The pruned model running ``selection``, by default what the spec's discretization keeps for the
    model's alphas (argmax per block, or the most probable selection within the spec's budget:
    ``graph.budget.selection_for``), with the kept weights."""
    rs = model.resolved_spec
    if model.graph.discretized:
        return model
    if selection is None:
        selection = selection_for(rs, model.alphas().detach().cpu().tolist())
    selection = list(selection)
    small = lower(rs, selection=selection, pretrained=False)
    state = model.state_dict()
    wanted = small.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise CompileError(f"discretization lost parameters {missing[:3]}")
    small.load_state_dict({k: state[k] for k in wanted}, strict=True)
    small.set_tokenizer(model.get_tokenizer(), model.tokenizer_problem)
    return small.to(next(model.parameters()).device)


def single_component(model: HybridModel) -> str | None:
    """The component a discretized hybrid is made of alone (same component in every block, its own
    embedding and head, no projector), else None."""
    g = model.graph
    if not g.discretized or len(set(g.selection)) != 1 or g.task != "causal-lm":
        return None
    (name,) = set(g.selection)
    if g.node("embed").components != (name,) or g.node("head").components != (name,):
        return None
    if any(n.kind in ("in_proj", "out_proj") for n in g.nodes()):
        return None
    rc = model.resolved_spec.component(name)
    if g.width != rc.hidden_size or g.vocab_size != rc.shape.vocab_size:
        return None  # padded or truncated: not the plain model
    return name


def export_component(model: HybridModel, name: str) -> torch.nn.Module:
    """The component as a plain transformers model, holding the hybrid's weights for it."""
    rc = model.resolved_spec.component(name)
    family = get_family(rc.family)
    plain = build_model(family, rc.config, seed=0)
    adapter = load_adapter(family, plain)
    parts = {"embed.sources." + name: adapter.embedding(), "head.heads." + name: adapter.lm_head()}
    for i, block in enumerate(model.blocks):
        segment = block.segments[name]
        parts[f"blocks.{i}.segments.{name}"] = adapter.segment(segment.start, segment.stop)
    hybrid_modules = dict(model.named_modules())
    with torch.no_grad():
        for prefix, part in parts.items():
            part.load_state_dict(hybrid_modules[prefix].state_dict(), strict=True)
    if getattr(plain.config, "tie_word_embeddings", False):
        plain.tie_weights()
    return plain.eval()


@dataclass(frozen=True)
class Exported:
    path: Path
    kind: str  # "hybrid" | the family name of a plain export
    selection: tuple[str, ...]


def refuse_foreign_directory(out_dir: GuardedDir) -> None:
    """An existing output directory (opened without following a link: a link at -o is refused before) is
    replaced only if it holds an earlier export (a discretized hybrid, or a plain export with its
    ``hybridc.json``) or nothing; anything else is the user's and is never deleted or written through: a
    hybrid that is not discretized (a trained model, a run's final/) is refused (``PathRefused``, exit 2), and
    so is a directory holding anything else too (``RunError``)."""
    if not out_dir.names():
        return
    try:
        data = json.loads(out_dir.read_text("config.json")) if out_dir.is_file("config.json") else {}
        hybrid = data.get("model_type") == "hybridc"
        ours = out_dir.is_file(EXPORT_RECORD) or (hybrid and isinstance(data.get("selection"), list))
    except (OSError, ValueError, AttributeError):
        hybrid = ours = False
    if hybrid and not ours:
        raise PathRefused(f"{out_dir.path} holds a hybrid that is not discretized (a trained model, not an export)",
                          "choose another -o directory (hybridc replaces only its own earlier exports)")
    if not ours:
        raise RunError(f"{out_dir.path} exists and does not hold a model written by hybridc",
                       "choose another -o directory (hybridc replaces only its own earlier exports)")


def _refuse_output(parent: GuardedDir, name: str) -> None:
    """The output ``parent/name`` is absent, or a real directory holding nothing or an earlier export: a link
    (even to an earlier export) or a file there is refused (``PathRefused``), untouched."""
    info = parent.lstat(name)
    if info is None:
        return
    if not parent.is_dir(name):
        kind = parent.kind(name)
        if kind == "a symbolic link":
            raise PathRefused(f"{parent.path / name} is a symbolic link; hybridc does not write an export through it",
                              "choose another output path (hybridc writes only to a new directory or over its "
                              "own earlier output, and never follows or removes a link)")
        raise PathRefused(f"{parent.path / name} exists and is not a directory ({kind}); hybridc does not write an "
                          "export over it", "choose another output path (hybridc never replaces files it did not "
                          "create)")
    with parent.child(name) as existing:
        refuse_foreign_directory(existing)


def export(model: HybridModel, out_dir: Path) -> Exported:
    """Write the discretized model to ``out_dir`` with its tokenizer, generation config and model card:
    built in a fresh staging directory beside it (``.OUT.<random>.tmp``, created exclusively), then moved into
    place (an earlier export there is replaced; see ``refuse_foreign_directory``). Every path is reached from
    ``out_dir``'s parent directory without following a link (``hybridc.io.guarded_dir``). A plain export also
    holds ``hybridc.json``: the lock of the hybrid it came from and the selection (``hybridc eval`` reads the
    task, seed and tokenizer kind there; transformers ignores it)."""
    out_dir = Path(out_dir)
    if out_dir.name in ("", ".", ".."):
        raise PathRefused(f"{out_dir} names no directory to write", "give -o a directory name")
    with GuardedDir.open(out_dir.parent, create=True) as parent:
        target = out_dir.name
        _refuse_output(parent, target)
        small = discretize_model(model)
        name = single_component(small)
        staged_name = parent.make_temp_dir(f".{target}.", ".tmp")  # a new directory of ours, never a user's path
        installed = False
        try:
            with parent.child(staged_name) as staged:
                where = staged.library_path()
                if name is not None:
                    plain = export_component(small, name)
                    tokenizer = small.get_tokenizer()
                    if tokenizer is not None:
                        set_generation_ids(plain.generation_config, tokenizer)
                    plain.save_pretrained(where)
                    staged.give_umask_mode(*(n for n in staged.names() if n.endswith(".safetensors")))
                    if tokenizer is not None:
                        save_tokenizer(tokenizer, where)
                    kind = small.resolved_spec.component(name).family
                    record = {"hybridc_export": 1, "component": name, "selection": list(small.graph.selection),
                              "lock": small.config.lock}
                    staged.write_text(EXPORT_RECORD, json.dumps(record, indent=2) + "\n")
                    staged.write_text("README.md", model_card(small, plain_family=kind))
                else:
                    small.save_pretrained(where)
                    kind = "hybrid"
                    staged.write_text("README.md", model_card(small))
            parent.install(staged_name, target, refuse_foreign_directory)  # (checked again: it may have changed)
            installed = True
        finally:
            if not installed:
                try:
                    parent.remove_tree(staged_name)  # the staging directory this call created
                except (OSError, PathRefused):
                    pass
    return Exported(out_dir, kind, tuple(small.graph.selection))
