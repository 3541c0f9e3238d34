"""The components of a hybrid as models: built from scratch for their config (from a seed derived from the
spec's), or loaded from their pretrained checkpoint and, with ``vocab: new``/``transplant``, rebuilt under the
hybrid's vocabulary."""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch import nn

from ..components.adapters import build_model
from ..components.pretrained import load_pretrained
from ..components.registry import get_family
from ..data.tokenizer import load_tokenizer
from ..errors import CompileError
from ..nn.transplant import TransplantPlan, transplant_plan, under_hybrid_vocab
from ..spec.frontend import ResolvedSpec


def derived_seed(seed: int, *parts: str) -> int:
    """A seed for one random choice, derived from the spec's seed and a name (stable across runs)."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def build_component(rs: ResolvedSpec, name: str, seed: int) -> nn.Module:
    """A new model of component ``name`` (its config, initialised from ``seed``); a config its family cannot build
    is a located ``SpecError`` naming the key (``components.build_errors``)."""
    from ..components.adapters import build_on_meta
    from ..errors import HybridcError

    family = get_family(rs.component(name).family)
    try:
        return build_model(family, rs.component(name).config, seed=derived_seed(seed, "component", name))
    except HybridcError:
        raise
    except Exception as err:
        from ..spec.build_errors import located_build_error

        raise located_build_error(rs, name, err, lambda config: build_on_meta(family, config)) from None


def load_components(rs: ResolvedSpec, names) -> dict[str, nn.Module]:
    """Load the pretrained weights of the ``from:`` components among ``names``; a ``vocab: new`` or
    ``transplant`` component comes rebuilt for the hybrid's vocabulary (``hybridc.nn.transplant``)."""
    models = {}
    for name in names:
        component = rs.spec.component(name)
        rc = rs.component(name)
        if component.source.kind == "init":
            continue
        _confine_component_files(rs, name)
        try:
            models[name] = load_pretrained(get_family(rc.family), rc.location, revision=rc.revision,
                                           trust_remote_code=component.trust_remote_code)
        except Exception as err:  # (a mamba-ssm checkpoint's error says what to do: its hint)
            raise CompileError(f"cannot load the weights of component '{name}' from {component.source}: {err}",
                               getattr(err, "hint", None) or "check that the directory holds safetensors weights "
                               "written by save_pretrained") from None
        if rc.vocab != "pretrained":
            plan = transplant_plan_of(rs, rc) if rc.vocab == "transplant" else None
            models[name] = under_hybrid_vocab(models[name], rc, seed=derived_seed(rs.spec.train.seed, "vocab", name),
                                              plan=plan)
    return models


def _confine_component_files(rs: ResolvedSpec, name: str) -> None:
    """A component resolved under a root (``--root``): every file in a local component's directory
    (config.json, the weights, tokenizer files) must still resolve inside the root when the weights are read,
    and a Hub id may not name a local path (transformers would read it instead), else a located ``SpecError``
    naming the file and the root (nothing outside is opened)."""
    from ..components import hub
    from ..errors import Diagnostic, SpecError
    from ..spec.resolve import PathError, spec_path

    rc = rs.component(name)
    source = rs.spec.component(name).source
    if rc.root is None or rc.location is None:
        return
    try:
        if source.kind == "local":
            spec_path(Path(rc.location), rc.location, Path(rc.root))  # the directory, then each file in it
        elif hub.shadowing_directory(source.ref) is not None:  # from_pretrained would read it, not the Hub
            raise PathError(f"hf:{source.ref} is also a local path here, which transformers would load instead "
                            "of the Hub's files, unchecked by --root",
                            f"run hybridc from another directory, or write from: ./{source.ref}")
    except PathError as err:
        raise SpecError([Diagnostic(rs.source_map.at("components", name, "from"), f"component '{name}': {err.message}",
                                    err.hint)]) from None


def transplant_plan_of(rs: ResolvedSpec, rc) -> TransplantPlan:
    """How component ``rc``'s rows move into the hybrid's vocabulary (its own tokenizer -> the hybrid's)."""
    from ..data.tokenizer import load_hf_tokenizer

    own = load_hf_tokenizer(rc.location, rc.revision, name=rc.name, what=f"the tokenizer of component '{rc.name}'")
    hybrid = load_tokenizer(rs)
    if hybrid is None:
        raise CompileError(f"component '{rc.name}': vocab: transplant needs the hybrid's tokenizer, and it has none",
                           "give the spec a tokenizer with files, or use vocab: new")
    return transplant_plan(own, hybrid, rs.vocab_size)
