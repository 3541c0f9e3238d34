"""Stage 4 of the front end: read each component's config (config.json only, never weights).

``hf:`` sources fetch ``config.json`` through ``huggingface_hub`` (its cache works offline); local
sources read ``<dir>/config.json``; ``init:`` sources build a config from the family's defaults.
Problems are located at the component's ``from``/``init`` key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..components import hub, mamba_ssm
from ..components.family import MAX_LAYERS, MAX_VOCAB, MAX_WIDTH, Family, Shape
from ..components.registry import families, family_for_config, get_family
from ..errors import Diagnostic
from .canonical import COMMON_INIT_KEYS, SourceMap, thaw
from .model import Component, LayerRange
from .schema import did_you_mean


@dataclass(frozen=True)
class ResolvedComponent:
    """A component's config, shape and explicit layer ranges."""

    name: str
    family: str
    config: AbcMapping[str, Any]  # full config.json dict (read-only)
    shape: Shape
    ranges: tuple[LayerRange, ...]
    location: str | None  # absolute local directory or Hub id; None for init
    revision: str | None  # requested revision (hf) or None
    commit: str | None  # resolved commit hash when known (hf)
    vocab: str = "pretrained"  # new / transplant: config and shape carry the hybrid's vocabulary (spec.vocab)
    vocab_matched: tuple[int, int] | None = None  # transplant: (tokens found by string in its vocabulary, hybrid tokens)
    root: str | None = None  # the --root its files must stay inside (resolved), checked again when weights load

    @property
    def hidden_size(self) -> int:
        return self.shape.hidden_size

    @property
    def num_layers(self) -> int:
        return self.shape.num_layers


# transformers writes the floats JSON has no word for as {"__float__": "Infinity"} (Mamba-2's time_step_limit)
_SPECIAL_FLOATS = {"Infinity": float("inf"), "-Infinity": float("-inf"), "NaN": float("nan")}


def _special_float(obj: dict[str, Any]) -> Any:
    if set(obj) == {"__float__"} and obj["__float__"] in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[obj["__float__"]]
    return obj


def read_config_json(path: Path) -> dict[str, Any]:
    """A config.json as a dict (transformers' encoded infinities decoded); ValueError unless an object."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f, object_hook=_special_float)
    if not isinstance(data, dict):
        raise ValueError("config.json does not hold a JSON object")
    return data


def _hub_config(repo: str, revision: str | None) -> tuple[dict[str, Any], str | None]:
    path = hub.download(repo, "config.json", revision)
    commit = path.parent.name if path.parent.parent.name == "snapshots" else None
    return read_config_json(path), commit


def resolve_path(base_dir: Path, ref: str) -> Path:
    """A path written in a spec, resolved relative to the spec's directory."""
    path = Path(os.path.expanduser(ref))
    return path if path.is_absolute() else (base_dir / path)


class PathError(Exception):
    """A local path in a spec that cannot be used: malformed, unreadable, or outside the root."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def show_ref(ref: str) -> str:
    """A path as written, shortened for messages."""
    shown = ref if ref.isprintable() else repr(ref)[1:-1]
    return shown if len(shown) <= 80 else shown[:77] + "..."


def spec_path(base_dir: Path, ref: str, root: Path | None = None) -> Path:
    """A local path written in a spec: relative to the spec's directory and, when ``root`` is given,
    inside ``root`` after '..' and symlinks are resolved; a directory's entries too (the files loaders open
    there: config.json, weights, tokenizer files, data files), each resolved on its own. It need not exist;
    ``PathError`` when it is malformed (a NUL byte, a name too long, a symlink loop) or it or one of its
    entries escapes the root."""
    try:
        path = resolve_path(base_dir, ref)
        try:
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            pass  # missing: the caller says what it expected there
        real = Path(os.path.realpath(path))
        top = Path(os.path.realpath(root)) if root is not None else None
    except OSError as err:
        raise PathError(f"cannot use the path '{show_ref(ref)}': {err.strerror or err}", "check the path") from None
    except ValueError as err:  # embedded NUL byte
        raise PathError(f"invalid path '{show_ref(ref)}' ({err})", "check the path") from None
    if top is not None and not _inside(real, top):
        raise PathError(f"path '{show_ref(ref)}' escapes the root {top} (it resolves to {real})",
                        "paths in this spec must stay inside the root given with --root; move the file "
                        "inside it, or use hf:<id> for the Hub")
    if top is not None and real.is_dir():
        confined_directory(path, top, shown=ref)
    return path


def _inside(real: Path, top: Path) -> bool:
    return real == top or top in real.parents


def _escaping(file: Path, top: Path) -> Path | None:
    """Where ``file`` resolves to when that is outside ``top`` (a resolved root), else None."""
    try:
        real = Path(os.path.realpath(file))
    except (OSError, ValueError):  # a symlink loop, a name too long: it cannot be opened inside the root either
        return file
    return None if _inside(real, top) else real


def _outside_message(name: str, folder: str, top: Path, real: Path) -> PathError:
    return PathError(f"{show_ref(name)} in '{show_ref(folder)}' escapes the root {top} (it resolves to {real})",
                     "every file a spec's directories hold must stay inside the root given with --root (a "
                     "symlink to a file outside it counts as outside); copy the file into the directory "
                     "(cp -L), or widen --root")


def confined_file(directory: Path, name: str, root: Path | None) -> Path:
    """``directory / name``, a file to open, refused with ``PathError`` (naming the file and the root) when
    ``root`` is given and the file resolves (after '..' and symlinks, the file's own included) outside it.
    It need not exist. Readers of the files in a component's or tokenizer's directory (config.json,
    model.safetensors, tokenizer.json, ...) open what this returns."""
    file = Path(directory) / name
    if root is None:
        return file
    top = Path(os.path.realpath(root))
    real = _escaping(file, top)
    if real is not None:
        raise _outside_message(name, str(directory), top, real)
    return file


def confined_directory(directory: Path, root: Path | None, shown: str | None = None) -> Path:
    """``directory`` when every entry in it resolves inside ``root`` (the files a loader may open there:
    config.json, weights, tokenizer files); else ``PathError`` naming the first entry that escapes and the
    root. ``shown``: the directory as the spec wrote it, for the message."""
    if root is None:
        return directory
    top = Path(os.path.realpath(root))
    try:
        entries = sorted(os.listdir(directory))
    except OSError as err:
        raise PathError(f"cannot list the directory '{show_ref(shown or str(directory))}': {err.strerror or err}",
                        "check the path and its permissions") from None
    outside = [(name, real) for name in entries if (real := _escaping(Path(directory) / name, top)) is not None]
    if outside:
        (name, real), more = outside[0], [n for n, _ in outside[1:]]
        err = _outside_message(name, shown or str(directory), top, real)
        if more:
            shown_more = ", ".join(show_ref(n) for n in more[:5]) + (", ..." if len(more) > 5 else "")
            err = PathError(f"{err.message}; so do {len(more)} more of its entries ({shown_more})", err.hint)
        raise err
    return directory


def resolve_component(
    component: Component, base_dir: Path, smap: SourceMap, root: Path | None = None
) -> tuple[ResolvedComponent | None, list[Diagnostic]]:
    """Config, family and shape of one component (ranges are filled from its blocks)."""
    source = component.source
    name = component.name
    loc = smap.at("components", name, "from" if source.kind != "init" else "init")
    commit = None
    location = None
    directory: Path | None = None  # a local source's directory
    if source.kind == "init":
        return _resolve_init(component, smap)
    if source.kind == "local":
        try:
            directory = spec_path(base_dir, source.ref, root)
        except PathError as err:
            return None, [Diagnostic(loc, f"component '{name}': {err.message}", err.hint)]
        location = os.path.realpath(directory)
        if not directory.exists():
            return None, [Diagnostic(loc, f"component '{name}': no such directory '{source.ref}'",
                                     f"paths are relative to the spec file ({base_dir}); use hf:<id> for the Hub")]
        try:
            config_path = confined_file(directory, "config.json", root)
        except PathError as err:
            return None, [Diagnostic(loc, f"component '{name}': {err.message}", err.hint)]
        if not config_path.is_file():
            return None, [Diagnostic(loc, f"component '{name}': '{source.ref}' has no config.json",
                                     "point at a directory written by save_pretrained")]
        try:
            config = read_config_json(config_path)
        except (OSError, ValueError) as err:
            return None, [Diagnostic(loc, f"component '{name}': cannot read {config_path.name}: {err}")]
    else:
        location = source.ref
        shadow = hub.shadowing_directory(source.ref) if root is not None else None
        if shadow is not None:
            return None, [Diagnostic(loc, f"component '{name}': hf:{source.ref} is also a local path here "
                                     f"({os.path.realpath(shadow)}), which transformers would load instead of the "
                                     "Hub's files, unchecked by --root",
                                     f"run hybridc from another directory, or write from: ./{source.ref} for the "
                                     "local directory (inside the root)")]
        try:
            config, commit = _hub_config(source.ref, source.revision)
        except hub.HubUnreachable as err:  # said at once, not after huggingface_hub's retries
            return None, [Diagnostic(loc, f"component '{name}': cannot fetch config.json of hf:{source.ref}: {err}",
                                     hub.hint("the model"))]
        except Exception as err:  # network, auth, missing repo: all reported the same way
            reason = type(err).__name__
            return None, [Diagnostic(loc, f"component '{name}': cannot fetch config.json of hf:{source.ref} ({reason})",
                                     "check the id and your network; offline, download the model once "
                                     "(or save_pretrained it) and use its local directory")]
    if mamba_ssm.recognizes(config):  # state-spaces' mamba-* / mamba2-*: read as transformers' Mamba / Mamba2
        config, problems = _mamba_ssm_config(name, config, loc, directory, source.ref, root)
        if problems:
            return None, problems
    model_type = config.get("model_type")
    family = family_for_config(config)
    if family is None:
        classes = config.get("architectures")
        shown = f" (architectures: {', '.join(map(str, classes))})" if isinstance(classes, list) and classes else ""
        known = sorted(t for f in families().values() for t in f.model_types)
        suggestion = did_you_mean(str(model_type), known)
        hint = ((f"{suggestion}; " if suggestion else "") + f"hybridc knows {len(known)} decoder families "
                f"({', '.join(known)}); a config.json whose 'architectures' names one of their *ForCausalLM "
                "classes is read as that family; other families come as plugins")
        return None, [Diagnostic(loc, f"component '{name}': unknown model type '{model_type}'{shown}", hint)]
    resolved, problems = _finish(component, family, family.full_config(config), location, source.revision, commit, smap)
    if resolved is not None and root is not None:
        resolved = dataclasses.replace(resolved, root=os.path.realpath(root))
    return resolved, problems


def _mamba_ssm_config(name: str, config: dict[str, Any], loc, directory: Path | None, ref: str,
                      root: Path | None) -> tuple[dict[str, Any], list[Diagnostic]]:
    """A config.json in mamba-ssm's layout as transformers' Mamba / Mamba2 config (``components.mamba_ssm``), or
    its problems located at the component's ``from``: each key that cannot be read, and for a local directory
    weights that are not there (checked by name only: nothing is read)."""
    translated, problems = mamba_ssm.to_transformers(config)
    found = [Diagnostic(loc, f"component '{name}': its config.json (mamba-ssm's layout): {p.message}",
                        p.hint or "fix its config.json") for p in problems]
    if directory is not None and not found:
        try:
            present = [n for n in mamba_ssm.WEIGHT_FILES if confined_file(directory, n, root).is_file()]
        except PathError as err:
            return config, [Diagnostic(loc, f"component '{name}': {err.message}", err.hint)]
        if not present:
            found.append(Diagnostic(loc, f"component '{name}': '{ref}' holds a mamba-ssm config.json but no weights "
                                    f"({' or '.join(mamba_ssm.WEIGHT_FILES)})",
                                    "copy the checkpoint's weights file beside its config.json"))
    return (translated or config), found


def declared_max_length(component: Component, base_dir: Path, root: Path | None = None) -> int | None:
    """The longest sequence a component's config allows (its family's length key), read even when the rest
    of the component (its blocks, other config values) has problems, so that data lengths are checked beside
    those. None when its config cannot be read, its family is unknown, or the value is not a positive whole
    number (a bad value is the component's own error)."""
    source = component.source
    try:
        if source.kind == "init":
            values = {k: thaw(v) for k, v in source.init}
            family = get_family(str(values.get("family")))
            if family is None or family.keys.max_length is None:
                return None
            extra = {k: v for k, v in values.items() if k not in COMMON_INIT_KEYS and k in family.known_keys()}
            config = family.init_config({k: values[k] for k in COMMON_INIT_KEYS[1:] if k in values}, extra)
        else:
            if source.kind == "local":
                config_path = confined_file(spec_path(base_dir, source.ref, root), "config.json", root)
                if not config_path.is_file():  # (a FIFO would block)
                    return None
                config = read_config_json(config_path)
            elif root is not None and hub.shadowing_directory(source.ref) is not None:
                return None
            else:
                config, _ = _hub_config(source.ref, source.revision)
            family = family_for_config(config)
        if family is None or family.keys.max_length is None:
            return None
        value = family.full_config(config).get(family.keys.max_length)
    except MemoryError:  # (never taken for a malformed value: a size that should have been refused first)
        raise
    except Exception:  # noqa: BLE001 - unreadable, unfetchable or malformed: the component's own error says why
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _resolve_init(component: Component, smap: SourceMap) -> tuple[ResolvedComponent | None, list[Diagnostic]]:
    name = component.name
    values = {k: thaw(v) for k, v in component.source.init}
    family_name = str(values.get("family"))
    family = get_family(family_name)
    if family is None:
        return None, [Diagnostic(smap.at("components", name, "init", "family"), f"unknown family '{family_name}'",
                                 did_you_mean(family_name, families()) or f"known families: {', '.join(families())}")]
    problems = []
    known = family.known_keys()
    defaults = family.defaults()
    extra = {}
    for key, value in values.items():
        if key in COMMON_INIT_KEYS:
            continue
        where = smap.at("components", name, "init", key)
        if key not in known:
            where = smap.at("components", name, "init", key, "key")
            problems.append(Diagnostic(where, f"unknown key '{key}' for family {family.name}",
                                       did_you_mean(key, sorted(known) + list(COMMON_INIT_KEYS))
                                       or "common keys: " + ", ".join(COMMON_INIT_KEYS)))
            continue
        default = defaults.get(key)
        if not _same_kind(default, value):
            problems.append(Diagnostic(where, f"'{key}' of {family.name} expects {_kind(default)}, not {value!r}"))
            continue
        extra[key] = value
    problems += _init_caps(component, family, values, smap)
    if problems:
        return None, problems
    common = {k: values[k] for k in COMMON_INIT_KEYS[1:] if k in values}
    try:
        config = family.init_config(common, extra)
    except (ValueError, TypeError, ArithmeticError, KeyError) as err:  # sizes the family's rules cannot split
        return None, [Diagnostic(smap.at("components", name, "init"), f"component '{name}': no {family.name} "
                                 f"config has these sizes ({type(err).__name__}: {err})",
                                 "choose sizes the family's layers can be built with")]
    return _finish(component, family, config, None, None, None, smap)


def _init_caps(component: Component, family: Family, values: dict[str, Any], smap: SourceMap) -> list[Diagnostic]:
    """Sizes of an ``init:`` past what hybridc builds (``MAX_LAYERS``, ...), said before the family's config is
    made: its per-layer lists (layer types, attention patterns) have one entry per layer."""
    name = component.name
    problems = []
    keys = family.keys
    for generic, key, most in (("hidden_size", keys.hidden, MAX_WIDTH), ("layers", keys.layers, MAX_LAYERS),
                               ("vocab_size", keys.vocab, MAX_VOCAB), ("heads", keys.heads, MAX_WIDTH)):
        for written in dict.fromkeys(k for k in (generic, key) if k):
            value = values.get(written)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > most:
                problems.append(Diagnostic(smap.at("components", name, "init", written),
                                           f"component '{name}': {written} is {value:,}, more than hybridc builds "
                                           f"(at most {most:,})", "check the number (a typo, or a config that is "
                                           "not a model's)"))
    return problems


def _same_kind(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and (isinstance(default, float) or isinstance(value, int))
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a whole number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _finish(component: Component, family: Family, config: dict[str, Any], location, revision, commit,
            smap: SourceMap) -> tuple[ResolvedComponent | None, list[Diagnostic]]:
    name = component.name
    loc = smap.at("components", name, "init" if component.source.kind == "init" else "from")
    try:
        shape = family.shape(config)
    except KeyError as err:
        return None, [Diagnostic(loc, f"component '{name}': its {family.name} config is incomplete (no {err})")]
    except (TypeError, ValueError, OverflowError) as err:
        return None, [Diagnostic(loc, f"component '{name}': its {family.name} config is invalid ({err})")]
    problems = _shape_problems(component, family, config, shape, smap)
    if problems:
        return None, problems
    resolved = ResolvedComponent(
        name=component.name,
        family=family.name,
        config=MappingProxyType(config),
        shape=shape,
        ranges=component.blocks.ranges(shape.num_layers),
        location=location,
        revision=revision,
        commit=commit,
    )
    return resolved, []


def _shape_problems(component: Component, family: Family, config: dict[str, Any], shape: Shape,
                    smap: SourceMap) -> list[Diagnostic]:
    """Sizes a model cannot have: widths, layers, vocabularies and lengths below 1, fractional counts,
    attention heads that do not divide the width."""
    name = component.name
    init = component.source.kind == "init"
    generic = {family.keys.hidden: "hidden_size", family.keys.layers: "layers", family.keys.vocab: "vocab_size",
               family.keys.heads: "heads", family.keys.max_length: "max_length"}

    def where(key: str):
        if not init:
            return smap.at("components", name, "from")
        return smap.at("components", name, "init", generic.get(key) if generic.get(key) in dict(
            component.source.init) else key)

    problems = []
    for key in (family.keys.hidden, family.keys.layers, family.keys.vocab, family.keys.heads, family.keys.max_length):
        if key is None or key not in config or (config[key] is None and key == family.keys.max_length):
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
            shown = generic.get(key, key) if init else key
            problems.append(Diagnostic(where(key), f"component '{name}': {shown} is {value!r}; it must be a "
                                       "positive whole number", None if init else "fix its config.json"))
    heads_key = family.keys.heads
    heads = config.get(heads_key) if heads_key else None
    if not problems and isinstance(heads, int) and heads >= 1 and config.get("head_dim") is None \
            and shape.hidden_size % heads:
        top = min(heads, shape.hidden_size)
        fewer = next((h for h in range(top, 0, -1) if shape.hidden_size % h == 0), None) if top <= 65536 else None
        problems.append(Diagnostic(where(heads_key), f"component '{name}': its width {shape.hidden_size} is not "
                                   f"divisible by its {heads} attention heads",
                                   (f"use {fewer} heads, or " if fewer else "use ") + f"a width divisible by {heads}"))
    if not problems:
        for message in family.config_problems(config):
            problems.append(Diagnostic(smap.at("components", name, "init" if init else "from"),
                                       f"component '{name}': {message}",
                                       "choose sizes that meet it" if init else "fix its config.json"))
    for key, most in ((family.keys.hidden, MAX_WIDTH), (family.keys.layers, MAX_LAYERS), (family.keys.vocab, MAX_VOCAB),
                      (family.keys.heads, MAX_WIDTH)):
        value = config.get(key) if key else None
        if not problems and isinstance(value, int) and value > most:
            shown = generic.get(key, key) if init else key
            problems.append(Diagnostic(where(key), f"component '{name}': {shown} is {value:,}, more than hybridc "
                                       f"builds (at most {most:,})", "check the number (a typo, or a config that "
                                       "is not a model's)"))
    return problems
