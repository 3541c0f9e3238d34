#!/usr/bin/env python
"""Regenerate ``hybridc/components/family_defaults.json`` from the installed transformers.

For each built-in family: instantiate its config class with no arguments and take ``to_dict()``
(minus ``transformers_version``), so torch-free code can merge a config.json over the defaults. Two
adjustments keep "a key missing from config.json" meaning what transformers means by it:

- a dataclass field that ``__post_init__`` derives (Llama ``head_dim``/``num_key_value_heads``,
  Mamba ``time_step_rank`` -> "auto", ``rope_parameters``, ``id2label``, GPT-Neo ``attention_types``)
  keeps its declared default, not the value derived for the default sizes (``head_dim`` 128 is wrong
  for any other width);
- keys that exist only because ``__post_init__`` sets them (GPT-Neo ``attention_layers``, Mamba
  ``intermediate_size``) are dropped: absent, the config class derives them again.

Non-finite floats (Mamba2 ``time_step_limit`` = (0, inf)) are written as ``Infinity``, as
transformers' own ``save_pretrained`` does; Python's ``json`` reads them back.

Usage: ``python scripts/gen_family_defaults.py [--check]`` (``--check``: exit 1 if the file is stale).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "hybridc" / "components" / "family_defaults.json"


def _normalised(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples -> lists, int keys -> str keys)."""
    return json.loads(json.dumps(value))


def _declared_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def config_defaults(config_cls: type) -> dict[str, Any]:
    """The defaults of one transformers config class, as described in the module docstring."""
    from transformers import PreTrainedConfig

    values = config_cls().to_dict()
    values.pop("transformers_version", None)
    base_keys = set(PreTrainedConfig().to_dict())
    declared = {field.name: field for field in dataclasses.fields(config_cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        field = declared.get(key)
        if field is None:
            if key in base_keys:  # model_type, _name_or_path, output_attentions
                out[key] = value
            continue  # set by __post_init__ only: derived again when absent
        raw = _declared_default(field)
        if raw is dataclasses.MISSING or _normalised(raw) == _normalised(value):
            out[key] = value
        else:
            out[key] = raw
    return _normalised(out)


def generate() -> dict[str, dict[str, Any]]:
    """``{family_name: defaults}`` for every built-in family, from the installed transformers."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from transformers.utils import logging as hf_logging

    from hybridc.components.adapters import config_class
    from hybridc.components.registry import builtin_families

    hf_logging.set_verbosity_error()
    result: dict[str, dict[str, Any]] = {}
    for name, family in builtin_families().items():
        result[name] = config_defaults(config_class(family))
    return result


def render(data: dict[str, dict[str, Any]]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render(generate())
    if "--check" in argv:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run scripts/gen_family_defaults.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
