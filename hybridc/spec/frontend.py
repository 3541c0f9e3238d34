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
from .canonical import SourceMap, _Builder, _mixture, _source, bind_call, build_spec
from .load import Document, load_file, parse_text
from .model import STAGE_KINDS, TRAINING_KINDS, Component, DataSource, Spec, Split
from .resolve import ResolvedComponent, declared_max_length, resolve_component
from .schema import check_schema, repaired
from .signatures import DATA_SOURCES
from .tree import Mapping, Scalar, Sequence


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
    root: Path | None = None  # --root: every local file the run opens must resolve inside it

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
    read a broken value), and the one ``SpecError`` lists both. The checks that depend on nothing else
    (alpha rows on the simplex, sequence lengths against the components' limits) run beside any of them,
    even when the schema errors leave no spec at all (``_independent_checks``)."""
    try:
        parsed = parse_document(doc)
    except SpecError as err:
        if err.partial is None:  # the schema errors leave no spec: the independent checks still run
            more = _independent_checks(doc, _base_dir(doc), root)
            if not more:
                raise
            raise _joined(err.diagnostics, more, err.warnings) from None
        checked = _semantic_checks(err.partial, root)
        more = checked.problems + _independent_checks(doc, err.partial.base_dir, root, checked.components,
                                                      err.partial.spec.component_names)
        if not more:
            raise
        raise _joined(err.diagnostics, more, checked.tokenizer_warnings) from None
    return resolve(parsed, root=root)


def _joined(first, more, warnings) -> SpecError:
    """One ``SpecError`` of ``first`` and ``more``, each problem once (the same place and message)."""
    seen: set = set()
    problems = []
    for d in (*first, *more):
        if (d.location, d.message) not in seen:
            seen.add((d.location, d.message))
            problems.append(d)
    error = SpecError(problems)
    error.warnings = tuple(warnings)
    return error


def _base_dir(doc: Document) -> Path:
    return doc.path.parent if doc.path is not None else Path.cwd()


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
    if checked.problems:  # with the checks that the problems found may have skipped
        more = _independent_checks(parsed.document, parsed.base_dir, root, checked.components,
                                   parsed.spec.component_names)
        raise _joined(checked.problems, more, checked.tokenizer_warnings)
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
        root=Path(root) if root is not None else None,
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


def _independent_checks(doc: Document, base_dir: Path, root: str | Path | None, resolved=(),
                        attempted: tuple[str, ...] = ()) -> list[Diagnostic]:
    """The checks whose errors follow from no other problem, read straight from the document's text: each
    row of fixed or programmed alphas on the simplex, and each stage's sequence length against the
    components' limits.
    When a spec has problems they run on every part written without a schema error, so that a structural
    error (a schema error anywhere, a component or stage that did not build, block counts that differ)
    never hides them until the next run. ``resolved``: the components the semantic checks resolved (their
    limits are known); ``attempted``: the components they tried (one from the Hub is not fetched again)."""
    top = doc.root
    if not isinstance(top, Mapping):
        return []
    root = Path(root) if root is not None else None
    wrong = _schema_error_paths(top)

    def clean(*path) -> bool:
        return not any(w[: len(path)] == path or path[: len(w)] == w for w in wrong)

    b = _Builder(doc.file)  # a scratch builder: its errors are the other checks' (not reported again here)
    problems: list[Diagnostic] = []
    components = top.get("components") if isinstance(top.get("components"), Mapping) else Mapping(top.loc)
    names = tuple(str(key.value) for key, _ in components)
    rows, path = None, ("hybrid", "mixture")
    hybrid = top.get("hybrid")
    if isinstance(hybrid, Mapping) and isinstance(hybrid.get("mixture"), Scalar) and clean(*path):
        mixture = _mixture(b, hybrid.get("mixture"))
        if mixture.mode == "fixed" and not b.diags:
            rows = mixture.alphas
        elif mixture.mode == "programmed" and not b.diags:
            path = ("hybrid", "mixture", "path")
            rows, _ = checks.read_programmed(mixture.path or "", names, base_dir, b.smap.at(*path), root)
    unused: set[str] = set()  # as the semantic checks find them: weight 0 in every row of valid alphas
    if rows:
        whole = [(i, row) for i, row in enumerate(rows) if len(row) == len(names)]  # else: the row's own error
        alpha_problems = [d for i, row in whole for d in checks.alpha_row_problems(i, row, b.smap, path)]
        problems.extend(alpha_problems)
        train_node = top.get("train")
        baselines = train_node.get("baselines") if isinstance(train_node, Mapping) else None
        trained_alone = isinstance(baselines, Scalar) and baselines.value is True and clean("train", "baselines")
        if not alpha_problems and len(whole) == len(rows) and not trained_alone:
            unused = {n for j, n in enumerate(names) if all(row[j] == 0 for row in rows)}  # never run: no limit
    known = {rc.name: rc for rc in resolved}
    limits = []
    for key, node in components:
        name = str(key.value)
        if name in unused:
            continue
        if name in known:
            limit = known[name].shape.max_length
        else:
            component = _written_component(name, node, doc.file) if clean("components", name, "from") and \
                clean("components", name, "init") else None
            if component is None or (name in attempted and component.source.kind == "hf"):
                continue
            limit = declared_max_length(component, base_dir, root)
        if limit is not None:
            limits.append((limit, name))
    train_node = top.get("train")
    stages = train_node.get("stages") if isinstance(train_node, Mapping) else None
    if not limits or not isinstance(stages, Sequence):
        return problems
    for i, item in enumerate(stages):
        if not isinstance(item, Mapping) or not isinstance(item.get("data"), Scalar):
            continue
        node, kind = item.get("data"), item.get("kind") or item.get("name")
        if not clean("train", "stages", i, "data") or (
                isinstance(kind, Scalar) and kind.value in STAGE_KINDS and kind.value not in TRAINING_KINDS):
            continue  # (a stage that does not train reads no data: its 'data' is its own error)
        before = len(b.diags)
        parsed = b.parse(node, "data source")
        bound = bind_call(b, node, parsed, DATA_SOURCES, "data source") if parsed is not None else None
        if bound is not None and len(b.diags) == before:
            problems.extend(checks.length_problems(DataSource(*bound), node.loc, limits))
    return problems


def _written_component(name: str, node, file: str) -> Component | None:
    """A component's source as written (its blocks left aside), or None when it has errors of its own."""
    if not isinstance(node, Mapping):
        return None
    b = _Builder(file)
    source = _source(b, name, node)
    return Component(name, source, Split(1)) if source is not None and not b.diags else None


def _schema_error_paths(top: Mapping) -> list[tuple]:
    """The paths of the values the schema rejects (of a wrong key or name, the key's path; a missing key marks
    nothing): what the independent checks do not read."""
    from .schema import _validator

    data = top.to_python()
    paths = []
    for err in _validator().iter_errors(data):
        path = tuple(err.absolute_path)
        value = _at(data, path)
        if err.validator == "required":
            continue
        if err.validator == "additionalProperties" and isinstance(value, dict):
            allowed = err.schema.get("properties", {})
            paths.extend(path + (key,) for key in value if key not in allowed)
        elif isinstance(value, dict) and isinstance(err.instance, str) and err.instance in value:
            paths.append(path + (err.instance,))  # a key that is not a valid name
        else:
            paths.append(path)
    return paths


def _at(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


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
