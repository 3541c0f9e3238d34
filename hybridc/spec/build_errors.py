"""A component whose config its family cannot build (transformers' config class refuses a value, or building its
model raises), reported as a located spec error that names the key.

When building a component's model (on the meta device to count it, or for real) raises, the key to blame is
found by trying again with one value at a time put back: each key the spec's ``init:`` gives (or, for a
checkpoint, each value of its ``config.json`` that differs from the family's default) is reverted to the
family's default, and the first whose revert lets the model build is named, located at that key of the spec
(or at ``from:``). When no single key explains it, the error is located at the component and quotes the
library's message. Only failures are analysed this way: a model that builds costs nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import Diagnostic, SpecError

MAX_TRIALS = 32  # keys tried at most (each trial builds the model on the meta device)
NOT_CANDIDATES = frozenset({"model_type", "architectures", "transformers_version", "_name_or_path", "torch_dtype",
                            "dtype", "auto_map"})


def explain(err: BaseException, limit: int = 240) -> str:
    """``Type: message`` on one line, shortened."""
    text = " ".join(str(err).split()) or "no details"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}"


def _builds(attempt: Callable[[Mapping[str, Any]], Any], config: Mapping[str, Any]) -> bool:
    try:
        attempt(config)
    except Exception:  # noqa: BLE001 - any failure: this revert does not explain it
        return False
    return True


def _init_trials(component, family) -> list[tuple[str, dict[str, Any]]]:
    """(key as the spec writes it, the config without it) for each key of an ``init:`` component."""
    from .canonical import COMMON_INIT_KEYS, thaw

    values = {k: thaw(v) for k, v in component.source.init}
    trials = []
    for key in values:
        if key == "family":
            continue
        rest = {k: v for k, v in values.items() if k != key}
        common = {k: rest[k] for k in COMMON_INIT_KEYS[1:] if k in rest}
        extra = {k: v for k, v in rest.items() if k not in COMMON_INIT_KEYS}
        try:
            config = family.init_config(common, extra)
        except Exception:  # noqa: BLE001 - the other keys alone make no config: not this one
            continue
        trials.append((key, config))
    return trials


def _checkpoint_trials(config: Mapping[str, Any], family) -> list[tuple[str, dict[str, Any]]]:
    """(key, the config with that value back at the family's default) for each value of a checkpoint's config
    that differs from the default."""
    defaults = family.defaults()
    return [(key, {**config, key: defaults[key]}) for key, value in config.items()
            if key in defaults and key not in NOT_CANDIDATES and value != defaults[key]]


def located_build_error(rs, name: str, err: BaseException,
                        attempt: Callable[[Mapping[str, Any]], Any]) -> SpecError:
    """The located ``SpecError`` for component ``name`` of ``rs`` whose config made ``attempt(config)`` (building
    or measuring its model) raise ``err``."""
    from ..components.registry import get_family

    component = rs.spec.component(name)
    rc = rs.component(name)
    family = get_family(rc.family)
    smap = rs.source_map
    init = component.source.kind == "init"
    trials = _init_trials(component, family) if init else _checkpoint_trials(dict(rc.config), family)
    for key, config in trials[:MAX_TRIALS]:
        if _builds(attempt, config):
            if init:
                value = dict(component.source.init)[key]
                from .canonical import thaw

                return SpecError([Diagnostic(
                    smap.at("components", name, "init", key),
                    f"component '{name}': {family.name} cannot build its model with {key} = {thaw(value)!r} "
                    f"({explain(err)})",
                    f"change {key} (the model builds without it); the family's transformers config and layers "
                    "refuse this value")])
            return SpecError([Diagnostic(
                smap.at("components", name, "from"),
                f"component '{name}': {family.name} cannot build the model its config.json describes: "
                f"'{key}' is {rc.config[key]!r} ({explain(err)})",
                f"fix '{key}' in its config.json (the model builds with the family's default, "
                f"{family.defaults()[key]!r})")])
    return SpecError([Diagnostic(
        smap.at("components", name, "init" if init else "from"),
        f"component '{name}': {family.name} cannot build its model from this config ({explain(err)})",
        "check the config's values against the family's transformers config" if init else
        "fix its config.json (save_pretrained writes one its family builds)")])
