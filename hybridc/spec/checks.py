"""Stage 5 of the front end: semantic checks against the resolved component configs.

Runs before any weight is loaded. Every problem is collected and located: layer ranges inside the
model, no gaps/overlaps, equal block counts, widths, tokenizer/vocabulary agreement, alphas on the
simplex, data files that exist, sequences no longer than a component allows.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

from ..errors import Diagnostic
from .canonical import SourceMap, hub_id_problem
from .model import BYTES_TOKENIZER, BYTES_VOCAB_SIZE, Ranges, Spec, Split
from .load import MAX_BYTES
from .resolve import PathError, ResolvedComponent, show_ref, spec_path
from .schema import did_you_mean
from .lra_checks import LRA_SOURCES, check_lra, sequence_length
from .signatures import DATA_SOURCES

SIMPLEX_TOLERANCE = 1e-6


def check_blocks(spec: Spec, comps: list[ResolvedComponent], smap: SourceMap) -> list[Diagnostic]:
    problems = []
    for rc in comps:
        component = spec.component(rc.name)
        layers = rc.num_layers
        path = ("components", rc.name, "blocks")
        if isinstance(component.blocks, Split):
            if component.blocks.n > layers:
                problems.append(Diagnostic(smap.at(*path), f"split({component.blocks.n}) of '{rc.name}' makes empty blocks: "
                                           f"it has only {layers} layers", f"use at most split({layers})"))
            continue
        expected = 0
        for i, r in enumerate(component.blocks.items):
            loc = smap.at(*path, i)
            if r.stop > layers:
                problems.append(Diagnostic(loc, f"range {r} is outside '{rc.name}', which has {layers} layers (0..{layers})",
                                           f"the last range should end at {layers}"))
            elif r.start > expected:
                problems.append(Diagnostic(loc, f"layers {expected}..{r.start} of '{rc.name}' are in no block",
                                           f"start this range at {expected}"))
            elif r.start < expected:
                problems.append(Diagnostic(loc, f"range {r} overlaps the previous range (which ends at {expected})",
                                           f"start this range at {expected}"))
            expected = max(expected, r.stop)
        if expected < layers and all(r.stop <= layers for r in component.blocks.items):
            last = len(component.blocks.items) - 1
            problems.append(Diagnostic(smap.at(*path, last), f"layers {expected}..{layers} of '{rc.name}' are in no block",
                                       f"end the last range at {layers}"))
    counts = {c.name: c.blocks.count for c in spec.components}
    first = spec.components[0].name
    for name, count in counts.items():
        if count != counts[first]:
            problems.append(Diagnostic(smap.at("components", name, "blocks"),
                                       f"'{name}' has {count} block{'s' * (count != 1)} but '{first}' has {counts[first]}",
                                       "every component is cut into the same number of blocks"))
    return problems


def check_width(spec: Spec, comps: list[ResolvedComponent], smap: SourceMap) -> list[Diagnostic]:
    from ..components.family import MAX_WIDTH

    widest = max(comps, key=lambda c: c.hidden_size)
    if spec.hybrid.width is not None and spec.hybrid.width > MAX_WIDTH:
        return [Diagnostic(smap.at("hybrid", "width"), f"width {spec.hybrid.width:,} is more than hybridc builds (at "
                           f"most {MAX_WIDTH:,})", f"use width: max (here {widest.hidden_size})")]
    if spec.hybrid.width is not None and spec.hybrid.width < widest.hidden_size:
        return [Diagnostic(smap.at("hybrid", "width"), f"width {spec.hybrid.width} is narrower than '{widest.name}' "
                           f"({widest.hidden_size})", f"use width: max or at least {widest.hidden_size}")]
    return []


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model",
                   "spiece.model")


def tokenizer_vocab(spec: Spec, comps: list[ResolvedComponent], base_dir: Path, smap: SourceMap,
                    root: Path | None = None) -> tuple[int | None, list[Diagnostic]]:
    """The hybrid's vocabulary size as the tokenizer defines it (None when it cannot be known statically),
    and the problems of its local tokenizer files (each read defensively: see ``tokenizer_identity``)."""
    tok = spec.tokenizer
    loc = smap.at("tokenizer")
    by_name = {c.name: c for c in comps}
    if tok in by_name:
        return by_name[tok].shape.vocab_size, _component_tokenizer_problems(spec, by_name[tok], loc)
    if tok in spec.component_names:  # component failed to resolve; reported already
        return None, []
    if tok == BYTES_TOKENIZER:
        return BYTES_VOCAB_SIZE, []
    if tok.startswith("hf:"):
        problem = hub_id_problem(tok[3:].partition("@")[0])
        return None, ([Diagnostic(loc, f"tokenizer: {problem}", "write hf:<org>/<name>[@revision]; a local "
                                  "tokenizer is written as a path, without hf:")] if problem else [])
    try:
        path = spec_path(base_dir, tok, root)
    except PathError as err:
        return None, [Diagnostic(loc, f"tokenizer: {err.message}", err.hint)]
    if not path.exists():
        hint = did_you_mean(tok, (*spec.component_names, BYTES_TOKENIZER))
        return None, [Diagnostic(loc, f"tokenizer '{show_ref(tok)}' is not a component, 'bytes', hf:<id> or an existing path",
                                 hint or f"components: {', '.join(spec.component_names)}")]
    if not path.is_dir() and not path.is_file():
        return None, [Diagnostic(loc, f"tokenizer '{show_ref(tok)}' is neither a directory nor a regular file",
                                 "point tokenizer at a tokenizer directory (or its tokenizer.json)")]
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None, [Diagnostic(loc, f"tokenizer directory '{show_ref(tok)}' holds no tokenizer files",
                                 "save one there with tokenizer.save_pretrained(dir) (tokenizer.json, ...), "
                                 "or name a component, bytes or hf:<id>")]
    identity, problem = read_tokenizer(path, f"the tokenizer '{show_ref(tok)}'", loc)
    if problem is not None:
        return None, [problem]
    return (identity.size if identity is not None else None), []


def read_tokenizer(path: Path, what: str, loc):
    """(identity, None) of the tokenizer files at ``path`` (a directory or a tokenizer.json), or (None, the
    located error giving the real reason they are refused)."""
    from .tokenizer_identity import TokenizerFileError, identity_of_directory, identity_of_file

    try:
        return (identity_of_directory(path) if path.is_dir() else identity_of_file(path)), None
    except TokenizerFileError as err:
        return None, Diagnostic(loc, f"{what}: {err.message}", err.hint)
    except OSError as err:
        return None, Diagnostic(loc, f"cannot read {what}: {err.strerror or err}",
                                "check the permissions of the tokenizer files")


def _component_tokenizer_problems(spec: Spec, rc: ResolvedComponent, loc) -> list[Diagnostic]:
    """The hybrid's tokenizer is component ``rc``'s: when it is a local directory, its tokenizer files (if
    any) must be readable and their ids must fit the component's vocabulary."""
    if spec.component(rc.name).source.kind != "local" or rc.location is None or not Path(rc.location).is_dir():
        return []  # built from scratch (no tokenizer) or on the Hub (read by the agreement check)
    identity, problem = read_tokenizer(Path(rc.location), f"the tokenizer of '{rc.name}'", loc)
    if problem is not None:
        return [problem]
    vocab = rc.shape.vocab_size
    if identity is not None and spec.component(rc.name).vocab == "pretrained" and identity.size > vocab:
        return [Diagnostic(loc, f"the tokenizer of '{rc.name}' uses ids up to {identity.size - 1:,}, beyond its "
                                f"vocabulary of {vocab:,} rows ({identity.short()})",
                           f"its tokenizer and config.json disagree: save the tokenizer that goes with the model, or "
                           f"set vocab_size to at least {identity.size} in its config.json")]
    return []


def check_vocab(vocab: int | None, spec: Spec, comps: list[ResolvedComponent], smap: SourceMap) -> list[Diagnostic]:
    problems = []
    if vocab is None:
        return problems
    for rc in comps:
        if spec.component(rc.name).vocab != "pretrained":
            continue  # it takes the hybrid's vocabulary
        if rc.shape.vocab_size < vocab:
            key = "init" if spec.component(rc.name).source.kind == "init" else "from"
            problems.append(Diagnostic(smap.at("components", rc.name, key),
                                       f"'{rc.name}' has a vocabulary of {rc.shape.vocab_size} tokens, fewer than the "
                                       f"tokenizer's {vocab}", "components must cover the tokenizer's vocabulary"
                                       + (" (set vocab_size in init)" if key == "init" else "")))
    return problems


def check_alphas(rows, n_blocks: int, names: tuple[str, ...], smap: SourceMap, path: tuple) -> list[Diagnostic]:
    """Alphas: one row per block, one entry per component, each row on the simplex."""
    problems = []
    if len(rows) != n_blocks:
        problems.append(Diagnostic(smap.at(*path), f"the mixture has {len(rows)} row{'s' * (len(rows) != 1)} of alphas "
                                   f"but the hybrid has {n_blocks} block{'s' * (n_blocks != 1)}", "give one row per block"))
    for i, row in enumerate(rows):
        if len(row) != len(names):
            problems.append(Diagnostic(smap.at(*path, i), f"alpha row {i} has {len(row)} entries but there are "
                                       f"{len(names)} components ({', '.join(names)})", "give one weight per component, in order"))
            continue
        problems.extend(alpha_row_problems(i, row, smap, path))
    return problems


def alpha_row_problems(i: int, row, smap: SourceMap, path: tuple) -> list[Diagnostic]:
    """Row ``i`` of the alphas on the simplex: each weight in [0, 1], the sum 1 (whatever the blocks are)."""
    problems = []
    for j, a in enumerate(row):
        if not math.isfinite(a) or a < 0 or a > 1:
            problems.append(Diagnostic(smap.at(*path, i, j), f"alpha [{i}][{j}] = {a} is outside [0, 1]"))
    total = sum(row)
    if abs(total - 1.0) > SIMPLEX_TOLERANCE:
        problems.append(Diagnostic(smap.at(*path, i), f"alpha row {i} sums to {total:.6g}, not 1",
                                   "each row is a point of the simplex: non-negative weights that sum to 1"))
    return problems


def load_programmed(spec: Spec, base_dir: Path, smap: SourceMap,
                    root: Path | None = None) -> tuple[tuple[tuple[float, ...], ...] | None, list[Diagnostic]]:
    """Read programmed alphas: JSON/YAML {"alphas": [[...], ...], "components": [...]}."""
    return read_programmed(spec.hybrid.mixture.path or "", spec.component_names, base_dir,
                           smap.at("hybrid", "mixture", "path"), root)


def read_programmed(rel: str, components: tuple[str, ...], base_dir: Path, loc,
                    root: Path | None = None) -> tuple[tuple[tuple[float, ...], ...] | None, list[Diagnostic]]:
    """``load_programmed`` of the alphas file ``rel`` written for ``components``, problems located at ``loc``."""
    expected = 'expected {"alphas": [[...], ...], "components": [...]}'
    try:
        path = spec_path(base_dir, rel, root)
    except PathError as err:
        return None, [Diagnostic(loc, f"alphas file: {err.message}", err.hint)]
    if not path.is_file():
        return None, [Diagnostic(loc, f"no such alphas file '{show_ref(rel)}'", "write it with `hybridc program`, or fix the path")]
    try:
        if path.stat().st_size > MAX_BYTES:
            return None, [Diagnostic(loc, f"the alphas file '{show_ref(rel)}' is larger than {MAX_BYTES / 1e6:.0f} MB",
                                     expected)]
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rows = data["alphas"] if isinstance(data, dict) else data
        rows = tuple(tuple(float(a) for a in row) for row in rows)
        names = data.get("components") if isinstance(data, dict) else None
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise ValueError(f"'components' must be a list of names, not {names!r}")
    except Exception as err:
        return None, [Diagnostic(loc, f"cannot read alphas from '{show_ref(rel)}': {err}", expected)]
    if names is not None and list(names) != list(components):
        return None, [Diagnostic(loc, f"'{rel}' holds alphas for components {list(names)}, not {list(components)}")]
    return rows, []


def check_data(spec: Spec, base_dir: Path, smap: SourceMap, vocab: int | None,
               comps: list[ResolvedComponent], root: Path | None = None, task_known: bool = True) -> list[Diagnostic]:
    """Each stage's data: its source exists (inside ``root``), fits the task, the components' lengths and
    the vocabulary. ``task_known=False`` (the task had an error) skips what compares against the task."""
    problems = []
    limits = [(c.shape.max_length, c.name) for c in comps if c.shape.max_length is not None]
    for i, stage in enumerate(spec.train.stages):
        if stage.data is None or ("train", "stages", i, "data") not in smap.locations:
            continue  # inherited data is checked where it is written
        loc = smap.at("train", "stages", i, "data")
        sig = DATA_SOURCES[stage.data.name]
        if task_known and spec.task.kind not in sig.tasks:
            problems.append(Diagnostic(loc, f"{stage.data.name}() data is for {' or '.join(sig.tasks)}, but the task is {spec.task}",
                                       "change the task or the data source"))
        if task_known and stage.data.name == "listops" and spec.task.num_classes != 10:
            problems.append(Diagnostic(loc, f"listops() labels are the digits 0-9, but the task is {spec.task}",
                                       "use task: classify(10)"))
        if stage.data.name == "mad":
            problems.extend(_check_mad(stage.data, spec, loc, vocab, limits, task_known))
            continue
        source = stage.data.arg("source")
        data_path = None
        if isinstance(source, str) and source.startswith("hf:") and stage.data.name in ("pixels", "retrieval"):
            problems.append(Diagnostic(loc, f"{stage.data.name}() reads local files, not a Hub dataset ({source})",
                                       "download the data and name its directory or file"))
        elif isinstance(source, str) and source.startswith("hf:"):
            problem = hub_id_problem(source[3:].partition("@")[0])
            if problem:
                problems.append(Diagnostic(loc, f"data: {problem}", "write hf:<org>/<dataset>; a local file or "
                                           "directory is written as a path, without hf:"))
        if isinstance(source, str) and not source.startswith("hf:"):
            try:  # (a directory's files too: text() reads them, each must stay inside the root)
                data_path = spec_path(base_dir, source, root)
                missing = not data_path.exists()
            except PathError as err:
                problems.append(Diagnostic(loc, f"data: {err.message}", err.hint))
                data_path, missing = None, False
            if missing:
                problems.append(Diagnostic(loc, f"no such data file '{show_ref(source)}'",
                                           f"paths are relative to the spec file ({base_dir}); use hf:<dataset> for the Hub"))
            elif data_path is not None and data_path.is_file() and data_path.stat().st_size == 0:
                problems.append(Diagnostic(loc, f"the data file '{show_ref(source)}' is empty",
                                           "point the data at a file with text or records in it"))
            elif (task_known and data_path is not None and data_path.is_file()
                  and stage.data.name in ("classify", "bytetext")):
                problems.extend(_check_first_records(stage.data, data_path, spec, loc))
        if stage.data.name in LRA_SOURCES:
            problems.extend(check_lra(stage.data, data_path, spec.task if task_known else None, loc, vocab, limits, root))
        problems.extend(length_problems(stage.data, loc, limits))
        data_vocab = stage.data.arg("vocab")
        if isinstance(data_vocab, int) and vocab is not None and data_vocab > vocab:
            problems.append(Diagnostic(loc, f"the data uses {data_vocab} tokens but the hybrid's vocabulary has {vocab}",
                                       "lower vocab= or give the components a larger vocab_size"))
    return problems


FIRST_RECORDS = 100  # classify(): records read at validate time (the rest are checked as they load)
FIRST_BYTES = 1 << 20


def _check_first_records(data, path: Path, spec: Spec, loc) -> list[Diagnostic]:
    """The first records of a local classify() file: the text and label fields exist, labels are class
    numbers of the task (a string label used to surface only at train time)."""
    import csv
    import io

    text_field, label_field = str(data.arg("text")), str(data.arg("label"))
    n = spec.task.num_classes or 0
    try:
        with open(path, "rb") as f:
            head = f.read(FIRST_BYTES).decode("utf-8", errors="replace")
    except OSError as err:
        return [Diagnostic(loc, f"cannot read the data file '{show_ref(str(path))}': {err.strerror or err}")]
    lines = head.splitlines()[: FIRST_RECORDS + 1]
    if len(head) == FIRST_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records = list(csv.DictReader(io.StringIO("\n".join(lines))))
    elif suffix == ".jsonl":
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                return [Diagnostic(loc, f"line {number} of '{path.name}' is not JSON ({err})",
                                   "write one JSON object per line: {\"text\": ..., \"label\": 0}")]
            records.append(record if isinstance(record, dict) else {})
    else:
        return []  # the data loader says which files it reads
    for i, record in enumerate(records[:FIRST_RECORDS], start=1):
        for field in (text_field, label_field):
            if field not in record:
                return [Diagnostic(loc, f"record {i} of '{path.name}' has no '{field}' field",
                                   f"records need '{text_field}' and '{label_field}' (set text=/label= to other names)")]
        label = record[label_field]
        if isinstance(label, str) and suffix == ".csv":  # the CSV reader gives numbers for numeric columns
            with contextlib.suppress(ValueError):
                label = float(label)
        try:
            class_label(label, n, spec.task)
        except ValueError as err:
            what, hint = err.args
            return [Diagnostic(loc, f"record {i} of '{path.name}' {what}", hint)]
    return []


def class_label(value: Any, n: int, task: Any) -> int:
    """``value`` as a class number 0..n-1 of ``task`` (a whole float counts); else ValueError(what, hint),
    ``what`` completing "record i of FILE ...". The classify() loader and validate share it."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"has label {value!r}, not a class number", f"labels are whole numbers 0..{n - 1} for {task}")
    if not 0 <= value < n:
        raise ValueError(f"has label {value}, outside 0..{n - 1} for {task}",
                         f"the task has {n} classes, so labels are 0..{n - 1}"
                         + (f"; for more classes write task: classify({value + 1})" if value >= n else ""))
    return value


def _check_mad(data, spec: Spec, loc, vocab: int | None, limits, task_known: bool = True) -> list[Diagnostic]:
    """A MAD source: its preset exists, compression goes with the compress task, sizes fit the hybrid."""
    from .mad_presets import presets, settings

    task, preset = data.arg("task"), data.arg("preset")
    if preset not in presets(task):
        return [Diagnostic(loc, f"unknown preset '{preset}' for {task}",
                           (did_you_mean(preset, presets(task)) or "") + f" presets: cpu, mad, mad-<key><value> "
                           f"(e.g. {next(n for n in presets(task) if n.startswith('mad-'))})")]
    if task_known and (task == "compression") != (spec.task.kind == "compress"):
        return [Diagnostic(loc, f"mad({task}) needs task: {'compress' if task == 'compression' else 'causal-lm'}, "
                                f"not {spec.task}", "compression rebuilds every position from the last state (task: compress)")]
    values = settings(task, preset, {k: data.arg(k) for k in ("vocab", "length", "examples", "noise", "copy", "motif")})
    problems = []
    if values.get("noise", 0) > 0 and values.get("noise_vocab", 0) < 1:
        problems.append(Diagnostic(loc, f"mad({task}) has noise={values['noise']:g} but no noise tokens "
                                        f"(this preset's noise vocabulary is 0)",
                                   "use mad(noisy-in-context-recall, ...), whose preset has noise tokens, or noise=0"))
    if vocab is not None and values["vocab"] > vocab:
        problems.append(Diagnostic(loc, f"mad({task}) uses {values['vocab']} tokens but the hybrid's vocabulary has {vocab}",
                                   "give the components a larger vocab_size"))
    problems.extend(length_problems(data, loc, limits))
    return problems


def length_problems(data, loc, limits) -> list[Diagnostic]:
    """A data source's sequences longer than a component allows (``limits``: (max length, name) pairs).
    Needs nothing but the source and the limits (an unknown MAD preset: nothing to compare)."""
    problems = []
    if data.name == "mad":
        from .mad_presets import presets, sequence_length, settings

        task, preset = data.arg("task"), data.arg("preset")
        if preset not in presets(task):
            return problems
        values = settings(task, preset, {k: data.arg(k) for k in ("vocab", "length", "examples", "noise", "copy", "motif")})
        length = sequence_length(task, values)
        for limit, name in limits:
            if length > limit:
                problems.append(Diagnostic(loc, f"mad({task}) sequences of {length} tokens are longer than '{name}' "
                                                f"allows ({limit})", f"raise max_length to at least {length}"))
        return problems
    key = "block" if data.arg("block") else "length"
    length = data.arg(key)
    for limit, name in limits:
        if isinstance(length, int) and length > limit:
            problems.append(Diagnostic(loc, f"sequences of {length} tokens ({key}={length}) are longer than '{name}' "
                                       f"allows ({limit})", f"set {key}={limit} or less in {data.name}(...)"))
    return problems


def check_stage_inits(spec: Spec, base_dir: Path, smap: SourceMap, root: Path | None) -> list[Diagnostic]:
    """With a root, a stage's ``init:`` directory must lie inside it (it need not exist yet: an earlier
    run may write it)."""
    problems = []
    if root is None:
        return problems
    for i, stage in enumerate(spec.train.stages):
        if stage.init is None:
            continue
        try:
            spec_path(base_dir, stage.init, root)
        except PathError as err:
            problems.append(Diagnostic(smap.at("train", "stages", i, "init"), f"stage '{stage.name}': init: {err.message}",
                                       err.hint))
    return problems


def context_length(spec: Spec, comps: list[ResolvedComponent]) -> int:
    """Sequence length used by the cost model: the first stage's data length, else the shortest limit, else 1024."""
    for stage in spec.train.stages:
        if stage.data is not None:
            length = stage.data.arg("block") or stage.data.arg("length") or sequence_length(stage.data)
            if isinstance(length, int):
                return length
    limits = [c.shape.max_length for c in comps if c.shape.max_length is not None]
    return min(limits + [1024])


def semantic_warnings(spec: Spec, smap: SourceMap) -> list[Diagnostic]:
    warnings = []
    for c in spec.components:
        if c.trust_remote_code:
            warnings.append(Diagnostic(smap.at("components", c.name, "trust_remote_code"),
                                       f"'{c.name}' may run code from its checkpoint (trust_remote_code: true)",
                                       "only enable this for checkpoints you trust", severity="warning"))
    budget = spec.hybrid.budget
    kinds = {s.kind for s in spec.train.stages}
    if budget is not None and not kinds & {"search", "discretize"}:
        warnings.append(Diagnostic(smap.at("hybrid", "budget", budget.measure),
                                   "hybrid.budget has no effect: no stage searches or discretizes",
                                   "add a discretize stage (it keeps the most probable selection within the budget)",
                                   severity="warning"))
    return warnings


def uses_ranges(spec: Spec) -> bool:
    return any(isinstance(c.blocks, Ranges) for c in spec.components)


def names_of(items: Any) -> tuple[str, ...]:
    return tuple(i.name for i in items)


def budget_state_unknown(spec: Spec, comps: list[ResolvedComponent], smap: SourceMap) -> Diagnostic | None:
    """A ``decode_state`` budget over a family that keeps its state outside transformers' cache layers
    (``Architecture.state_outside_cache``): no measure of it exists, said torch-free (the families whose
    state cannot be measured on the meta device for another reason, expert routing, are said at compile)."""
    from ..components.registry import get_family

    budget = spec.hybrid.budget
    if budget is None or budget.measure != "decode_state":
        return None
    unknown = [rc for rc in comps if getattr(get_family(rc.family).architecture, "state_outside_cache", False)
               and get_family(rc.family).measured_on_meta]
    if not unknown:
        return None
    families = ", ".join(f"{rc.name} ({rc.family})" for rc in unknown)
    return Diagnostic(smap.at("hybrid", "budget", budget.measure),
                      f"the decode state of {families} is not known: the family keeps it outside transformers' "
                      "cache layers, where no prefill measures it",
                      "budget another measure (flops_per_token, params, decode_params)")


def budget_check_deferred(spec: Spec, comps: list[ResolvedComponent], smap: SourceMap) -> Diagnostic | None:
    """Why ``validate`` leaves ``hybrid.budget`` to ``compile`` (a note located at the budget), or None when it
    can check it: the costs of a component of a family measured on the meta device (``Family.measured_on_meta``)
    need PyTorch, which the front end never imports."""
    from ..components.registry import get_family

    measured = [rc for rc in comps if get_family(rc.family).measured_on_meta]
    if spec.hybrid.budget is None or not measured:
        return None
    shown = ", ".join(f"'{rc.name}' ({rc.family})" for rc in measured)
    return Diagnostic(smap.at("hybrid", "budget"),
                      f"hybrid.budget is not checked here: the costs of {shown} are measured on PyTorch's meta "
                      "device, which validate does not load", "hybridc compile checks that a discretization fits "
                      "the budget (before any weight loads)", severity="note")
