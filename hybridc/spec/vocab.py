"""Tokenizer agreement, checked from configs and tokenizer files before any weight is loaded.

A pretrained component's embedding rows and LM head are indexed by the tokenizer it was trained with.
When the hybrid uses them (``embeddings: mix`` or that component; ``head: mix`` or that component, for
causal-LM heads), that tokenizer must be the hybrid's, unless the component says how to reconcile
(``vocab: new`` or ``transplant``). A component without tokenizer files cannot be checked: a warning.

``vocab: new`` / ``transplant`` components take the hybrid's vocabulary: their resolved config says so
(``vocab_size`` the hybrid's; ``new`` ties the head to the new embedding), so shapes, parameter counts and
saved models follow from the config alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

from ..components.registry import get_family
from ..errors import Diagnostic
from .canonical import SourceMap
from .model import BYTES_TOKENIZER, Spec
from .resolve import PathError, ResolvedComponent, spec_path
from .tokenizer_identity import (SENTENCEPIECE_HINT, SENTENCEPIECE_NEEDED, TokenizerFileError, TokenizerIdentity,
                                 bytes_identity, identity_of_directory, identity_of_file, identity_on_hub,
                                 sentencepiece_available)

LM_TASKS = ("causal-lm", "compress")


def component_identity(spec: Spec, rc: ResolvedComponent) -> TokenizerIdentity | None:
    """The tokenizer a ``from:`` component was saved with; None when its source has no tokenizer files."""
    source = spec.component(rc.name).source
    if source.kind == "init" or rc.location is None:
        return None
    if source.kind == "local":
        return identity_of_directory(Path(rc.location))
    return identity_on_hub(source.ref, source.revision)


def hybrid_identity(spec: Spec, comps: dict[str, ResolvedComponent], base_dir: Path,
                    root: Path | None) -> TokenizerIdentity | None:
    tok = spec.tokenizer
    if tok == BYTES_TOKENIZER:
        return bytes_identity()
    if tok in comps:
        return component_identity(spec, comps[tok])
    if tok in spec.component_names:
        return None  # the component failed to resolve (reported already)
    if tok.startswith("hf:"):
        ref, _, revision = tok[3:].partition("@")
        return identity_on_hub(ref, revision or None)
    try:
        path = spec_path(base_dir, tok, root)
    except PathError:
        return None  # reported by the tokenizer check
    if path.is_file():
        return identity_of_file(path)
    return identity_of_directory(path) if path.is_dir() else None


def _read_by_tokenizer_vocab(spec: Spec, comps: dict[str, ResolvedComponent]) -> bool:
    """Whether ``checks.tokenizer_vocab`` reads (and reports the problems of) the hybrid's tokenizer files:
    a local path, or a local component's directory."""
    tok = spec.tokenizer
    if tok in comps:
        return spec.component(tok).source.kind == "local"
    return tok != BYTES_TOKENIZER and not tok.startswith("hf:")


def _sentencepiece_warning(spec: Spec, comps: dict[str, ResolvedComponent], base_dir: Path, root: Path | None,
                           loc) -> list[Diagnostic]:
    """A SentencePiece-only hybrid tokenizer: validate reads its vocabulary from the protobuf, but train and
    generate load it with transformers, which needs the sentencepiece package."""
    try:
        identity = hybrid_identity(spec, comps, base_dir, root)
    except (OSError, ValueError):
        return []  # reported by checks.tokenizer_vocab
    if identity is None or identity.kind != "sentencepiece" or sentencepiece_available():
        return []
    return [Diagnostic(loc, f"the tokenizer '{spec.tokenizer}' ({identity.short()}): {SENTENCEPIECE_NEEDED}, "
                            "which is not installed here", SENTENCEPIECE_HINT, severity="warning")]


def used_parts(spec: Spec, name: str) -> list[str]:
    """Which of ``name``'s pretrained vocabulary parts the hybrid uses: "embeddings", "head"."""
    parts = []
    if spec.hybrid.embeddings in ("mix", name):
        parts.append("embeddings")
    if spec.task.kind in LM_TASKS and spec.hybrid.head in ("mix", name):
        parts.append("head")
    return parts


def _hint(spec: Spec, name: str) -> str:
    own = spec.tokenizer if spec.tokenizer in spec.component_names else None
    fixes = [f"set components.{name}.vocab: transplant (its rows re-indexed by token string) or new (a fresh "
             "embedding, trained in align)"]
    if own:
        fixes.insert(0, f"take embeddings and head from '{own}' (hybrid.embeddings: {own}, hybrid.head: {own})")
    else:
        fixes.append(f"use its tokenizer (tokenizer: {name})")
    return ", or ".join(fixes)


def check_tokenizers(spec: Spec, comps: list[ResolvedComponent], base_dir: Path, smap: SourceMap,
                     root: Path | None = None) -> tuple[list[Diagnostic], list[Diagnostic], dict[str, TokenizerIdentity | None]]:
    """(errors, warnings, identities): every pretrained embedding or head the hybrid uses must be indexed by
    the hybrid's tokenizer. ``identities`` holds each checked component's tokenizer and the hybrid's (key
    ``""``), for the transplant report."""
    by_name = {rc.name: rc for rc in comps}
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    identities: dict[str, TokenizerIdentity | None] = {}
    pending = [rc for rc in comps if spec.component(rc.name).source.kind != "init" and rc.name != spec.tokenizer
               and spec.component(rc.name).vocab != "new"
               and (used_parts(spec, rc.name) or spec.component(rc.name).vocab == "transplant")]
    resized = any(spec.component(rc.name).vocab != "pretrained" for rc in comps)  # they need the hybrid's size
    tok_loc = smap.at("tokenizer")
    if _read_by_tokenizer_vocab(spec, by_name):  # local files (read already): one that train cannot load here
        warnings.extend(_sentencepiece_warning(spec, by_name, base_dir, root, tok_loc))
    if not pending and not resized:
        return errors, warnings, identities
    try:
        hybrid = hybrid_identity(spec, by_name, base_dir, root)
    except TokenizerFileError as err:
        if _read_by_tokenizer_vocab(spec, by_name):
            return errors, warnings, identities  # the located error is checks.tokenizer_vocab's
        return [Diagnostic(tok_loc, f"the tokenizer '{spec.tokenizer}': {err.message}", err.hint)], warnings, identities
    except OSError as err:
        if _read_by_tokenizer_vocab(spec, by_name):
            return errors, warnings, identities
        return errors, [Diagnostic(tok_loc, f"cannot read the hybrid's tokenizer files: {err.strerror or err}",
                                   "the tokenizer agreement of the components was not checked",
                                   severity="warning")], identities
    identities[""] = hybrid
    for rc in pending:
        component = spec.component(rc.name)
        from_loc = smap.at("components", rc.name, "from")
        unreadable = None
        try:
            own = component_identity(spec, rc)
        except (OSError, ValueError) as err:
            own, unreadable = None, err
        identities[rc.name] = own
        if unreadable is not None:
            reason = (unreadable.message if isinstance(unreadable, TokenizerFileError)
                      else getattr(unreadable, "strerror", None) or str(unreadable))
            hint = unreadable.hint if isinstance(unreadable, TokenizerFileError) else None
            if component.vocab == "transplant":
                errors.append(Diagnostic(smap.at("components", rc.name, "vocab"),
                                         f"cannot read the tokenizer files of '{rc.name}', whose rows are "
                                         f"transplanted by token string: {reason}",
                                         (hint + ", " if hint else "fix its tokenizer files, ") + "or use vocab: new"))
            elif component.vocab == "pretrained":
                warnings.append(Diagnostic(from_loc, f"cannot read the tokenizer files of '{rc.name}': {reason}",
                                           "its embedding rows could not be checked against the hybrid's tokenizer"
                                           + (f" ({hint})" if hint else ""), severity="warning"))
            continue
        if component.vocab != "pretrained":
            if component.vocab == "transplant" and own is None:
                errors.append(Diagnostic(smap.at("components", rc.name, "vocab"),
                                         f"'{rc.name}' has no tokenizer files: its rows cannot be transplanted by "
                                         "token string", "save its tokenizer beside it, or use vocab: new"))
            elif component.vocab == "transplant" and hybrid is None:
                errors.append(Diagnostic(smap.at("components", rc.name, "vocab"),
                                         f"the hybrid's tokenizer '{spec.tokenizer}' has no tokenizer files: there "
                                         f"is no vocabulary to transplant the rows of '{rc.name}' into",
                                         "give the spec a tokenizer with files (a component's, a directory, "
                                         "hf:<id>, bytes), or use vocab: new"))
            continue
        parts = used_parts(spec, rc.name)
        if own is None or hybrid is None:
            missing = f"'{rc.name}' has no tokenizer files" if own is None else \
                f"the hybrid's tokenizer '{spec.tokenizer}' has no tokenizer files"
            warnings.append(Diagnostic(from_loc if own is None else tok_loc,
                                       f"{missing}: cannot check that the pretrained {' and '.join(parts)} of "
                                       f"'{rc.name}' are indexed by the hybrid's tokenizer",
                                       "save the tokenizer files beside the model (tokenizer.save_pretrained(dir))",
                                       severity="warning"))
            continue
        if own == hybrid:
            continue
        what = (f"the pretrained {{}} of '{rc.name}' {{}} indexed by its own tokenizer ({own.short()}), not by the "
                f"hybrid's tokenizer '{spec.tokenizer}' ({hybrid.short()})")
        if spec.tokenizer not in spec.component_names:  # the tokenizer choice is what mismatches
            errors.append(Diagnostic(tok_loc, what.format(" and ".join(parts), "is" if len(parts) == 1 else "are"),
                                     _hint(spec, rc.name)))
            continue
        unwritten = []
        for part in parts:
            if ("hybrid", part) in smap.locations:
                errors.append(Diagnostic(smap.at("hybrid", part), what.format(
                    "embedding" if part == "embeddings" else "LM head", "is"), _hint(spec, rc.name)))
            else:
                unwritten.append("embedding (embeddings: mix)" if part == "embeddings" else "LM head (head: mix)")
        if unwritten:
            errors.append(Diagnostic(from_loc, what.format(" and ".join(unwritten), "is" if len(unwritten) == 1
                                                           else "are"), _hint(spec, rc.name)))
    return errors, warnings, identities


def with_hybrid_vocab(spec: Spec, comps: list[ResolvedComponent], vocab_size: int,
                      identities: dict[str, TokenizerIdentity | None]) -> list[ResolvedComponent]:
    """``vocab: new`` / ``transplant`` components as the hybrid uses them: the hybrid's vocabulary size in
    their config (``new`` also ties the head to the new embedding), and for ``transplant`` how many of the
    hybrid's tokens its own vocabulary has (by token string)."""
    out = []
    for rc in comps:
        kind = spec.component(rc.name).vocab
        if kind == "pretrained":
            out.append(rc)
            continue
        family = get_family(rc.family)
        config = dict(rc.config)
        config[family.keys.vocab] = vocab_size
        if kind == "new":
            config["tie_word_embeddings"] = True
        matched = None
        own, hybrid = identities.get(rc.name), identities.get("")
        if kind == "transplant" and own is not None and hybrid is not None and hybrid.vocab:
            matched = (sum(1 for token in hybrid.vocab if token in own.vocab), len(hybrid.vocab))
        out.append(dataclasses.replace(rc, config=MappingProxyType(config), shape=family.shape(config), vocab=kind,
                                       vocab_matched=matched))
    return out


def vocab_report(rc: ResolvedComponent) -> str:
    """How a component's vocabulary parts are made, for the compile summary and the graph."""
    if rc.vocab == "transplant":
        if rc.vocab_matched is None:
            return "transplant"
        matched, total = rc.vocab_matched
        return f"transplant ({matched:,} of the tokenizer's {total:,} tokens matched by string)"
    return rc.vocab

