"""The front end's doors: text -> ``ParsedSpec`` -> ``ResolvedSpec``. Torch-free.

``parse_*`` needs nothing but the text (``fmt`` uses it); ``resolve`` reads component configs and runs
the semantic checks (``validate`` and everything downstream use it). Both raise ``SpecError`` with
every problem found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import CompileError, Diagnostic, SpecError
from . import checks
from . import vocab as vocab_checks
from .canonical import SourceMap, build_spec
from .load import Document, load_file, parse_text
from .model import Spec
from .resolve import ResolvedComponent, resolve_component
from .schema import check_schema, repaired
from .tree import Mapping


@dataclass(frozen=True)
class ParsedSpec:
    """A spec that passed the text-level checks: its canonical form and where each part was written."""

    spec: Spec
    source_map: SourceMap
    document: Document
    broken: frozenset[tuple] = frozenset()  # set only on the partial spec of a SpecError (``partial``)

    @property
    def base_dir(self) -> Path:
        return self.document.path.parent if self.document.path is not None else Path.cwd()

    def comments(self):
        from .comments import extract_comments

        return extract_comments(self.document.text, self.document.root)

    def canonical_text(self, keep_comments: bool = True) -> str:
        from .emit import format_spec

        return format_spec(self.spec, self.comments() if keep_comments else None)


@dataclass(frozen=True)
class ResolvedSpec:
    """A valid spec with its components' configs: everything the compiler needs, nothing loaded."""

    spec: Spec
    components: tuple[ResolvedComponent, ...]
    width: int  # shared width d
    vocab_size: int  # the hybrid's vocabulary (logits size)
    alphas: tuple[tuple[float, ...], ...] | None  # fixed/programmed alphas, N x M; None when searched
    context_length: int  # sequence length for cost estimates
    base_dir: Path
    file: str
    source_map: SourceMap
    warnings: tuple[Diagnostic, ...] = ()
    text: str = ""  # the spec file verbatim

    @property
    def num_blocks(self) -> int:
        return self.spec.num_blocks

    @property
    def names(self) -> tuple[str, ...]:
        return self.spec.component_names

    def component(self, name: str) -> ResolvedComponent:
        return next(c for c in self.components if c.name == name)


def parse_document(doc: Document) -> ParsedSpec:
    """The canonical spec of a document; raises ``SpecError`` with every schema and expression problem.

    A wrong key that nothing else reads (an unknown key, a learning rate) does not stop the expression
    checks of the rest. The error's ``partial`` is then the spec without the parts that had problems, for
    the semantic checks to go on with (``check_document``)."""
    problems = check_schema(doc.root)
    tree = repaired(doc.root) if problems else doc.root
    if tree is None:
        raise SpecError(problems)
    assert isinstance(tree, Mapping)
    spec, smap, more, broken = build_spec(tree, doc.file)
    problems = problems + more
    if problems or spec is None:
        error = SpecError(problems or [Diagnostic(smap.at(), "invalid spec")])
        if spec is not None:
            error.partial = ParsedSpec(spec, smap, doc, broken)
        raise error
    return ParsedSpec(spec, smap, doc)


def check_document(doc: Document, root: str | Path | None = None) -> ResolvedSpec:
    """``parse_document`` then ``resolve``, reporting every problem of the spec at once: when the text
    has problems, the semantic checks still run on the parts without them (skipping the checks that
    read a broken value), and the one ``SpecError`` lists both."""
    try:
        parsed = parse_document(doc)
    except SpecError as err:
        if err.partial is None:
            raise
        more = _semantic_checks(err.partial, root)
        if not more.problems:
            raise
        seen = {(d.location, d.message) for d in err.diagnostics}
        combined = SpecError(list(err.diagnostics) + [d for d in more.problems if (d.location, d.message) not in seen])
        combined.warnings = more.tokenizer_warnings
        raise combined from None
    return resolve(parsed, root=root)


def parse_file(path: str | Path) -> ParsedSpec:
    return parse_document(load_file(path))


def parse_string(text: str, file: str = "<spec>", base_dir: Path | None = None) -> ParsedSpec:
    path = (base_dir / "spec.yaml") if base_dir is not None else None
    return parse_document(parse_text(text, file=file, path=path))


def resolve(parsed: ParsedSpec, root: str | Path | None = None) -> ResolvedSpec:
    """Read component configs and run every semantic check; raises ``SpecError`` listing all problems.

    Local paths in the spec are relative to the spec file; with ``root``, each must resolve (after '..'
    and symlinks) inside ``root``, else it is an error.
    """
    checked = _semantic_checks(parsed, root)
    if checked.problems:
        error = SpecError(checked.problems)
        error.warnings = checked.tokenizer_warnings
        raise error
    spec, comps, vocab = parsed.spec, checked.components, checked.vocab
    width = spec.hybrid.width or max(c.hidden_size for c in comps)
    if vocab is None:
        vocab = min(c.shape.vocab_size for c in comps if spec.component(c.name).vocab == "pretrained")
    comps = vocab_checks.with_hybrid_vocab(spec, comps, vocab, checked.identities)
    return ResolvedSpec(
        spec=spec,
        components=tuple(comps),
        width=width,
        vocab_size=vocab,
        alphas=checked.alphas,
        context_length=checks.context_length(spec, comps),
        base_dir=parsed.base_dir,
        file=parsed.document.file,
        source_map=parsed.source_map,
        warnings=tuple(checks.semantic_warnings(spec, parsed.source_map)) + checked.tokenizer_warnings,
        text=parsed.document.text,
    )


@dataclass(frozen=True)
class _Checked:
    problems: list[Diagnostic]
    tokenizer_warnings: tuple[Diagnostic, ...]
    components: list[ResolvedComponent]
    vocab: int | None
    alphas: Any
    identities: dict


def _semantic_checks(parsed: ParsedSpec, root: str | Path | None) -> _Checked:
    """Every check that reads component configs and files. On a partial spec (``parsed.broken``), the
    checks that read a broken value are skipped: their errors would only follow from the first ones."""
    spec, smap, base_dir = parsed.spec, parsed.source_map, parsed.base_dir
    root = Path(root) if root is not None else None
    broken = parsed.broken  # (partial specs) checks that read a broken value are skipped

    def intact(*paths: tuple) -> bool:
        return not any(b[: len(p)] == p for b in broken for p in paths)

    names_intact = intact(("components",))
    tokenizer_intact = names_intact and intact(("tokenizer",), ("hybrid", "embeddings"), ("hybrid", "head"))
    problems: list[Diagnostic] = []
    comps: list[ResolvedComponent] = []
    for component in spec.components:
        rc, errs = resolve_component(component, base_dir, smap, root)
        problems.extend(errs)
        if rc is not None:
            comps.append(rc)
    vocab, tokenizer_warnings, identities = None, [], {}
    if tokenizer_intact:
        vocab, errs = checks.tokenizer_vocab(spec, comps, base_dir, smap, root)
        problems.extend(errs)
        tokenizer_errors, tokenizer_warnings, identities = vocab_checks.check_tokenizers(spec, comps, base_dir, smap, root)
        problems.extend(tokenizer_errors)
    alphas = spec.hybrid.mixture.alphas
    if spec.hybrid.mixture.mode == "programmed":
        alphas, errs = checks.load_programmed(spec, base_dir, smap, root)
        problems.extend(errs)
    if comps:
        problems.extend(checks.check_blocks(spec, comps, smap))
        problems.extend(checks.check_width(spec, comps, smap))
        if tokenizer_intact:
            problems.extend(checks.check_vocab(vocab, spec, comps, smap))
    counts = {c.blocks.count for c in spec.components}
    unused: set[str] = set()  # weight 0 in every block of fixed alphas: never run, so their limits do not apply
    if alphas is not None and names_intact and len(counts) == 1 and intact(("hybrid", "mixture")):
        path = ("hybrid", "mixture") if spec.hybrid.mixture.mode == "fixed" else ("hybrid", "mixture", "path")
        alpha_problems = checks.check_alphas(alphas, spec.num_blocks, spec.component_names, smap, path)
        problems.extend(alpha_problems)
        if not alpha_problems and not spec.train.baselines:  # a baseline trains each component alone
            unused = {n for i, n in enumerate(spec.component_names) if all(row[i] == 0 for row in alphas)}
    problems.extend(checks.check_data(spec, base_dir, smap, vocab, [c for c in comps if c.name not in unused], root,
                                      task_known=intact(("task",))))
    problems.extend(checks.check_stage_inits(spec, base_dir, smap, root))
    if tokenizer_intact and vocab is None and any(spec.component(c.name).vocab != "pretrained" for c in comps):
        known = identities.get("")
        if known is not None:
            vocab = known.size
        elif all(spec.component(c.name).vocab != "pretrained" for c in comps):
            problems.append(Diagnostic(smap.at("tokenizer"), f"the size of tokenizer '{spec.tokenizer}' is unknown "
                                       "(its files are not available), and every component takes its vocabulary",
                                       "download the tokenizer once, or point tokenizer at a local directory"))
    return _Checked(problems, tuple(tokenizer_warnings), comps, vocab, alphas, identities)


def load_spec(path: str | Path, root: str | Path | None = None) -> ResolvedSpec:
    """Parse, validate and resolve a spec file (configs only, no weights); with ``root``, every local
    path in it must stay inside ``root``."""
    return check_document(load_file(path), root=root)


LOCK_VERSION = 2


def lock_data(rs: ResolvedSpec) -> dict[str, Any]:
    """``spec.lock.yaml``: the canonical spec plus what resolution found (sources, commits, shapes).

    Components are lists of ``{name: ..., ...}`` entries, in the spec's order, in both ``spec`` and
    ``resolved``: the order is part of the model (alphas, projectors and segments are indexed by it), and
    a list keeps it through any serializer (``config.json`` is written with sorted keys)."""
    from .emit import spec_to_data

    spec = spec_to_data(rs.spec)
    spec["components"] = [{"name": name, **entry} for name, entry in spec["components"].items()]
    return {
        "hybridc_lock": LOCK_VERSION,
        "spec": spec,
        "resolved": {
            "width": rs.width,
            "vocab_size": rs.vocab_size,
            "alphas": [list(r) for r in rs.alphas] if rs.alphas is not None else None,
            "components": [
                {
                    "name": c.name,
                    "family": c.family,
                    "location": c.location,
                    "revision": c.revision,
                    "commit": c.commit,
                    "hidden_size": c.hidden_size,
                    "layers": c.num_layers,
                    "vocab_size": c.shape.vocab_size,
                    "blocks": [str(r) for r in c.ranges],
                    "vocab_matched": list(c.vocab_matched) if c.vocab_matched else None,
                    "config": dict(c.config),  # as the hybrid uses it (vocab: new/transplant: the hybrid's vocabulary)
                }
                for c in rs.components
            ],
        },
    }


def locked_spec(lock: dict[str, Any]) -> dict[str, Any]:
    """The canonical spec data of a lock (any version), components as an ordered mapping.

    A version-1 lock stored components as a mapping: read from ``spec.lock.yaml`` (written unsorted)
    its order is the spec's; read from a ``config.json`` (written with sorted keys) it may not be, so
    ``resolve_from_lock`` refuses version-1 locks of several components."""
    version = lock.get("hybridc_lock") if isinstance(lock, dict) else None
    if version not in (1, LOCK_VERSION):
        raise CompileError(f"unknown lock version {version!r} (this hybridc reads versions 1 and {LOCK_VERSION})",
                        "upgrade hybridc to the version that wrote it")
    spec = dict(lock["spec"])
    if version == LOCK_VERSION:
        spec["components"] = {entry["name"]: {k: v for k, v in entry.items() if k != "name"}
                              for entry in spec["components"]}
    return spec


def _locked_components(lock: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = lock["resolved"]["components"]
    if lock["hybridc_lock"] == 1:
        return dict(entries)
    return {entry["name"]: entry for entry in entries}


def resolve_from_lock(lock: dict[str, Any]) -> ResolvedSpec:
    """Rebuild a ``ResolvedSpec`` from ``lock_data`` output without reading any file or network.

    Used by saved hybrids (their config holds the lock). Raises ``CompileError`` for a lock that does not
    say its components' order (version 1 with several components).
    """
    from ..components.registry import get_family
    from .emit import dump_yaml
    from .model import LayerRange

    spec_data = locked_spec(lock)
    if lock["hybridc_lock"] == 1 and len(spec_data["components"]) > 1:
        raise CompileError(
            "this model was saved by an older hybridc, which wrote its components in alphabetical order "
            f"({', '.join(spec_data['components'])}), not necessarily the spec's: its mixture weights, projectors "
            "and segments cannot be matched to components safely",
            "save it again with this hybridc from its run: `hybridc train SPEC -o RUN --resume` rewrites RUN/final "
            "from the last checkpoint (the run's spec.lock.yaml kept the order)")
    parsed = parse_string(dump_yaml(spec_data), file="<lock>")
    resolved = lock["resolved"]
    locked = _locked_components(lock)
    comps = []
    for name in parsed.spec.component_names:
        entry = locked[name]
        family = get_family(entry["family"])
        if family is None:
            raise SpecError([Diagnostic(parsed.source_map.at("components", name), f"unknown family '{entry['family']}'",
                                        "install the plugin that provides it")])
        config = dict(entry["config"])
        ranges = tuple(LayerRange(*map(int, r.split(".."))) for r in entry["blocks"])
        comps.append(ResolvedComponent(name=name, family=family.name, config=MappingProxyType(config),
                                       shape=family.shape(config), ranges=ranges, location=entry.get("location"),
                                       revision=entry.get("revision"), commit=entry.get("commit"),
                                       vocab=parsed.spec.component(name).vocab,
                                       vocab_matched=tuple(entry["vocab_matched"]) if entry.get("vocab_matched") else None))
    alphas = resolved.get("alphas")
    return ResolvedSpec(
        spec=parsed.spec,
        components=tuple(comps),
        width=int(resolved["width"]),
        vocab_size=int(resolved["vocab_size"]),
        alphas=tuple(tuple(float(a) for a in row) for row in alphas) if alphas is not None else None,
        context_length=checks.context_length(parsed.spec, comps),
        base_dir=Path.cwd(),
        file="<lock>",
        source_map=parsed.source_map,
    )
