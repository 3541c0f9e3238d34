"""Tiny models of any family: configs from the family's defaults (torch-free), checkpoints and stand-ins.

``tiny_config(family)`` is a config.json dict of a model small enough to build in milliseconds (width 32,
3 layers, 4 heads, 96 tokens, 64 positions), with the few family-specific sizes that need to shrink as well
(``TINY_OVERRIDES``). ``tiny_checkpoint`` saves one with ``save_pretrained`` (a ``from:`` directory, as a user
brings a component), and ``stand_in`` makes the tiny copy of a component of a user's spec that ``hybridc
check`` runs in its place: the family, layer count, vocabulary and every setting that is not a size are
the component's, the widths are tiny and the weights random.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..components.family import Family
from ..components.registry import get_family

COMMON_KEYS = ("hidden_size", "layers", "heads", "vocab_size", "max_length")

TINY_COMMON: dict[str, Any] = {"hidden_size": 32, "layers": 3, "heads": 4, "vocab_size": 96, "max_length": 64}

# Families whose tiny models need other sizes: xLSTM rounds its head widths up to multiples of 64, so its
# width must make hidden_size * 0.5 a multiple of 64; states and experts smaller than the real models'.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "xlstm": {"hidden_size": 128},
    "falcon-h1": {"mamba_d_state": 16, "mamba_chunk_size": 16},
    "bamba": {"mamba_d_state": 16, "mamba_chunk_size": 16},
    "granitemoehybrid": {"mamba_d_state": 16, "mamba_chunk_size": 16},
    "nemotron-h": {"ssm_state_size": 16, "chunk_size": 16, "n_routed_experts": 4},
    "zamba2": {"mamba_d_state": 16, "chunk_size": 16},
    "jamba": {"num_experts": 4},
}


def family_of(family: str | Family) -> Family:
    """A family by name (built-in or plugin), or the ``Family`` given; KeyError when none is called so."""
    if isinstance(family, Family):
        return family
    found = get_family(family)
    if found is None:
        raise KeyError(f"no family {family!r} (hybridc families lists the built-ins; a plugin registers its own)")
    return found


def tiny_overrides(family: str | Family) -> dict[str, Any]:
    """The sizes a family's tiny models take besides the common ones: ``TINY_OVERRIDES``, or a plugin
    family's own ``tiny`` attribute (a dict of config keys)."""
    fam = family_of(family)
    return dict(TINY_OVERRIDES.get(fam.name, getattr(fam, "tiny", None) or {}))


def tiny_config(family_name: str | Family, **overrides: Any) -> dict[str, Any]:
    """A config.json dict of a tiny model (hidden 32, 3 layers, 4 heads, vocab 96, 64 positions).

    Overrides named like a common key (hidden_size, layers, heads, vocab_size, max_length) change
    the common keys; any other override is a family-specific config key.
    """
    family = family_of(family_name)
    common = dict(TINY_COMMON)
    extra: dict[str, Any] = {}
    for key, value in {**tiny_overrides(family), **overrides}.items():
        (common if key in COMMON_KEYS else extra)[key] = value
    return family.init_config(common, extra)


def tiny_checkpoint(family: str | Family, directory: str | Path, *, seed: int = 0, **sizes: Any) -> Path:
    """Save a tiny randomly initialised model of ``family`` in ``directory`` (``save_pretrained`` layout, as
    a user brings a component to ``from:``); ``sizes`` as in ``tiny_config``. Returns the directory."""
    from ..components.adapters import build_model
    from ..components.quiet import silenced

    fam = family_of(family)
    directory = Path(directory)
    model = build_model(fam, tiny_config(fam, **sizes), seed=seed)
    with silenced():
        model.save_pretrained(directory)
    return directory


# What a stand-in takes from the component's config besides its layers, vocabulary and positions: every
# setting that is not a size. Sizes (integers, lists of them) are the tiny model's; integers that are not
# sizes are kept by name.
_KEPT_INTEGERS = ("sliding_window", "window_size", "attention_window", "max_window_layers")
_NOT_SETTINGS = ("architectures", "transformers_version", "dtype", "torch_dtype", "_name_or_path")


def _is_setting(key: str, value: Any, layers: int) -> bool:
    """Whether a config entry is a setting a stand-in keeps (not a size)."""
    if key in _NOT_SETTINGS:
        return False
    if value is None or isinstance(value, (bool, str, float)):
        return True
    if isinstance(value, int):
        return key.endswith("token_id") or key in _KEPT_INTEGERS
    if isinstance(value, list):  # token id lists, layer-type patterns
        return (key.endswith("token_id") or key.endswith("token_ids")
                or (len(value) == layers and all(isinstance(v, str) for v in value)))
    if isinstance(value, dict):  # rope parameters, auto_map: settings when nothing in them is a size
        return all(v is None or isinstance(v, (bool, str, float)) for v in value.values())
    return False


def stand_in_config(family: str | Family, config: Mapping[str, Any], **sizes: Any) -> dict[str, Any]:
    """The config of a tiny stand-in of a component with ``config`` (a config.json dict): the same layers,
    vocabulary and positions, tiny widths (``sizes`` as in ``tiny_config``), and every setting of ``config``
    that is not a size (flags, activation functions, norms' epsilons, rotary settings, layer-type patterns,
    token ids, windows). When a kept setting cannot go with the tiny widths, the tiny model's own."""
    fam = family_of(family)
    shape = fam.shape(config)
    common = {"layers": shape.num_layers, "vocab_size": shape.vocab_size}
    if shape.max_length is not None:
        common["max_length"] = shape.max_length
    tiny = tiny_config(fam, **{**common, **sizes})
    sized = {fam.keys.hidden, fam.keys.layers, fam.keys.vocab, *([fam.keys.heads] if fam.keys.heads else [])}
    out = dict(tiny)
    out.update({k: v for k, v in config.items() if k not in sized and _is_setting(k, v, shape.num_layers)})
    return out if not fam.config_problems(out) else tiny


def stand_in(family: str | Family, source: str | Path | None, config: Mapping[str, Any], directory: str | Path, *,
             seed: int = 0) -> Path:
    """Save a tiny stand-in of a component in ``directory``: ``stand_in_config``'s model with random weights
    (built by transformers from the family's config class), the component directory's tokenizer files and
    its own code (``*.py``, what ``auto_map`` names, run only where the spec trusts remote code)."""
    from ..components.adapters import build_model
    from ..components.quiet import silenced

    fam = family_of(family)
    directory = Path(directory)
    try:
        model = build_model(fam, stand_in_config(fam, config), seed=seed)
    except Exception:  # noqa: BLE001 - a kept setting the tiny widths cannot build: the tiny model's own
        shape = fam.shape(config)
        model = build_model(fam, tiny_config(fam, layers=shape.num_layers, vocab_size=shape.vocab_size,
                                             **({"max_length": shape.max_length} if shape.max_length else {})),
                            seed=seed)
    with silenced():
        model.save_pretrained(directory)
    if source is not None and Path(source).is_dir():
        for path in Path(source).iterdir():
            if path.is_file() and not path.is_symlink() and (path.suffix == ".py" or path.name in _TOKENIZER_FILES):
                shutil.copyfile(path, directory / path.name)
        if "auto_map" in config:  # save_pretrained writes the config of the built (library) class
            import json

            saved = json.loads((directory / "config.json").read_text())
            saved["auto_map"] = config["auto_map"]
            (directory / "config.json").write_text(json.dumps(saved, indent=2))
    return directory


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                    "tokenizer.model", "added_tokens.json", "vocab.txt")


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread while tiny models run (they run fastest so, and leave the machine's other cores
    alone); the thread count is restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
