"""The format of a model directory, checked without torch before anything loads: a saved hybrid, a run (its ``final/``), or a plain component
exported by ``hybridc discretize`` (with ``hybridc.json``: the hybrid it came from). Each holds its
tokenizer; nothing outside the directory is read.

Nothing damaged loads, and nothing damaged crashes: every JSON file read is checked (an object, UTF-8, sizes
bounded, a lock whose components are each listed once), the weights files must be inside the directory (an
index naming ``../x`` or a link out of it is refused), and the weights must hold exactly the model's tensors
(checked from their headers against the model built on the meta device, before anything is allocated, and
from transformers' loading report after). Each refusal is a ``RunError`` naming the file and the problem."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HybridcError, RunError, SpecError, first_line
from ..io import NotRegularFile, not_regular, read_regular
from ..spec.frontend import ResolvedSpec

if TYPE_CHECKING:  # (this module reads directories without torch: ``check_before_loading`` runs before it loads)
    import torch


WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
DAMAGED = "the model directory is damaged: save the model again (save_pretrained, or hybridc discretize)"
MAX_SIZE = 2**31  # sizes in a config (vocabulary, widths, layers, heads) are positive ints below this
# the config keys that are sizes, in any family's config (and hybridc's lock)
SIZE_KEYS = frozenset({"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                       "num_key_value_heads", "head_dim", "max_position_embeddings", "n_embd", "n_layer", "n_head",
                       "n_inner", "n_positions", "num_layers", "num_heads", "state_size"})
MAX_JSON_BYTES = 256 * 2**20
SHOWN = 3  # tensor names shown in a refusal (then the count)


def model_directory(path: Path) -> Path:
    """A run directory means its final/; anything else must hold a saved hybrid. Its weights files must be
    inside it (``weight_files``)."""
    path = Path(path)
    if (path / "final").is_dir():
        path = path / "final"
    for name in ("config.json", WEIGHTS, WEIGHTS_INDEX):
        if (kind := not_regular(path / name)) is not None:  # (a FIFO or a directory where a file belongs)
            raise RunError(f"{path / name} is {kind}", DAMAGED)
    if not (path / "config.json").is_file():
        raise RunError(f"{path} holds no saved model (config.json missing)",
                       "pass a run directory, its final/, or a directory written by hybridc discretize")
    weights = [p for p in (WEIGHTS, WEIGHTS_INDEX) if (path / p).is_file()]
    if not weights:
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        raise RunError(f"{path} holds no model.safetensors" + (f" (only {', '.join(sorted(pickled))})" if pickled else ""),
                       "hybridc loads safetensors weights only (pickled .bin files can run code); save the model "
                       "with save_pretrained, which writes safetensors")
    if (path / weights[0]).stat().st_size == 0:
        raise RunError(f"{path / weights[0]} is empty", "the model was not saved completely: save it again")
    weight_files(path)
    return path


def from_pretrained_checked(load, directory: Path, **kwargs):
    """``load(directory, use_safetensors=True, ...)``, with unreadable weights reported as a ``RunError``
    (hybridc's own errors about the model pass through)."""
    from ..components.quiet import transformers_bars_off

    try:
        with transformers_bars_off():  # (hybridc says what it loads)
            return load(directory, use_safetensors=True, **kwargs)
    except HybridcError:
        raise
    except Exception as err:  # a truncated or foreign file: safetensors, OSError, shape mismatches
        raise RunError(f"cannot load the model in {directory}: {type(err).__name__}: {first_line(err)}",
                       "the directory needs config.json and model.safetensors as save_pretrained writes them") from None


# ---- the JSON files of a model directory --------------------------------------------------------------------

class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' object hook: a key written twice in one object is an error (json keeps the last)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a ``RunError`` naming the file when it is unreadable, too large, not UTF-8,
    not JSON, has a key twice in an object, or holds something other than an object."""
    path = Path(path)
    try:
        raw = read_regular(path, MAX_JSON_BYTES)
    except NotRegularFile as err:
        raise RunError(f"{path} is {err.strerror}", DAMAGED) from None
    except OSError as err:
        raise RunError(f"cannot read {path}: {err.strerror or err}", DAMAGED) from None
    if len(raw) > MAX_JSON_BYTES:
        raise RunError(f"{path} is larger than {MAX_JSON_BYTES >> 20} MiB, too large for a model's JSON file", DAMAGED)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RunError(f"{path} is not UTF-8 text (byte {err.start} is {raw[err.start]:#04x})", DAMAGED) from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as err:
        raise RunError(f"{path} has the key '{err}' twice in one object", DAMAGED) from None
    except json.JSONDecodeError as err:
        raise RunError(f"{path} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})",
                       DAMAGED) from None
    except RecursionError:
        raise RunError(f"{path} nests its JSON too deeply", DAMAGED) from None
    if not isinstance(value, dict):
        raise RunError(f"{path} holds a JSON {_json_type(value)}, not an object", DAMAGED)
    return value


def _json_type(value: Any) -> str:
    kinds = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"), (list, "list"), (dict, "object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _shown(value: Any) -> str:
    """A value as JSON writes it (shortened)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_size(value: Any, name: str, path: Path, *, optional: bool = False) -> int:
    """``value`` as a size: an int in 1 .. 2**31-1 (None too when ``optional``); else a ``RunError``."""
    if value is None and optional:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_SIZE:
        raise RunError(f"{path}: {name} is {_shown(value)}, not a size (a positive whole number below 2**31)", DAMAGED)
    return value


def check_sizes(data: Any, path: Path, where: str = "") -> None:
    """Every size (``SIZE_KEYS``) anywhere in a JSON value: None, a size, or a list of sizes."""
    if isinstance(data, list):
        for i, item in enumerate(data):
            check_sizes(item, path, f"{where}[{i}]")
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key in SIZE_KEYS and isinstance(value, list):
            for i, item in enumerate(value):
                check_size(item, f"{name}[{i}]", path)
        elif key in SIZE_KEYS:
            check_size(value, name, path, optional=True)
        else:
            check_sizes(value, path, name)


def read_config(directory: Path) -> dict[str, Any]:
    """A model directory's ``config.json``, checked: a JSON object whose sizes are sizes."""
    path = Path(directory) / "config.json"
    data = read_json(path)
    check_sizes(data, path)
    return data


def check_generation_config(directory: Path) -> None:
    """``generation_config.json``, when there is one, must be a JSON object (transformers ignores a damaged one:
    the model would generate with other special tokens)."""
    path = Path(directory) / "generation_config.json"
    if path.exists():
        read_json(path)


# ---- the lock of a saved hybrid -------------------------------------------------------------------------------

def _field(data: Mapping[str, Any], key: str, kind: type, path: Path, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        found = "missing" if key not in data else f"a JSON {_json_type(value)}"
        wanted = _json_type(kind())
        article = "an" if wanted[0] in "aeiou" else "a"
        raise RunError(f"{path}: {where}{key} is {found}, not {article} {wanted}", DAMAGED)
    return value


def _entries(components: Any, version: int, path: Path, where: str) -> dict[str, dict[str, Any]]:
    """A lock's component list (version 2: entries with a name; version 1: a mapping) by name, each
    listed once."""
    if version == 1:
        if not isinstance(components, dict) or not all(isinstance(v, dict) for v in components.values()):
            raise RunError(f"{path}: {where} is not a mapping of components", DAMAGED)
        return components
    if not isinstance(components, list) or not all(isinstance(e, dict) for e in components):
        raise RunError(f"{path}: {where} is not a list of components", DAMAGED)
    names = [e.get("name") for e in components]
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise RunError(f"{path}: {where} has a component without a name", DAMAGED)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RunError(f"{path}: {where} lists component{'s' if len(twice) > 1 else ''} "
                       f"{', '.join(repr(n) for n in twice)} more than once", DAMAGED)
    return {e["name"]: e for e in components}


def check_lock(lock: Any, path: Path, where: str = "lock") -> None:
    """The structure of a hybrid's lock (``lock_data``): its version, its spec's and its resolved components
    (each once, the same ones), and their sizes; a ``RunError`` naming ``path`` and the field."""
    if not isinstance(lock, dict):
        raise RunError(f"{path}: {where} is {'missing' if lock is None else 'a JSON ' + _json_type(lock)}, "
                       "not an object", DAMAGED)
    version = lock.get("hybridc_lock")
    if version not in (1, 2) or isinstance(version, bool):
        raise RunError(f"{path}: {where}.hybridc_lock is {_shown(version)} (this hybridc reads locks of "
                       "versions 1 and 2)", "upgrade hybridc to the version that wrote it, or save the model again")
    spec = _field(lock, "spec", dict, path, f"{where}.")
    resolved = _field(lock, "resolved", dict, path, f"{where}.")
    declared = _entries(spec.get("components"), version, path, f"{where}.spec.components")
    entries = _entries(resolved.get("components"), version, path, f"{where}.resolved.components")
    if set(declared) != set(entries) or not entries:
        raise RunError(f"{path}: {where} resolves components {sorted(entries)}, but its spec declares "
                       f"{sorted(declared)}", DAMAGED)
    vocab = check_size(resolved.get("vocab_size"), f"{where}.resolved.vocab_size", path)
    check_size(resolved.get("width"), f"{where}.resolved.width", path)
    for name, entry in entries.items():
        at = f"{where}.resolved.components['{name}']."
        _field(entry, "family", str, path, at)
        _field(entry, "config", dict, path, at)
        blocks = _field(entry, "blocks", list, path, at)
        if not all(isinstance(b, str) for b in blocks):
            raise RunError(f"{path}: {at}blocks is not a list of layer ranges", DAMAGED)
        for key in ("hidden_size", "layers"):
            check_size(entry.get(key), at + key, path)
        own = check_size(entry.get("vocab_size"), at + "vocab_size", path)
        if vocab > own:
            raise RunError(f"{path}: {where}.resolved.vocab_size ({vocab}) is larger than component '{name}''s "
                           f"vocabulary ({own})", DAMAGED)
    check_sizes(lock, path, where)
    _check_alphas(resolved.get("alphas"), path, f"{where}.resolved.alphas")


def _check_alphas(alphas: Any, path: Path, where: str) -> None:
    """None, or rows of finite numbers."""
    if alphas is None:
        return
    rows_ok = isinstance(alphas, list) and all(isinstance(r, list) for r in alphas)
    if not rows_ok or not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)
                              for r in alphas for a in r):
        raise RunError(f"{path}: {where} is not rows of numbers", DAMAGED)


def check_selection(selection: Any, names: Iterable[str], path: Path, where: str = "selection") -> None:
    """None, or a list of the lock's component names (one per block)."""
    if selection is None:
        return
    names = set(names)
    if not isinstance(selection, list) or not selection or not all(isinstance(s, str) for s in selection):
        raise RunError(f"{path}: {where} is not a list of component names", DAMAGED)
    unknown = sorted(set(selection) - names)
    if unknown:
        raise RunError(f"{path}: {where} names {', '.join(repr(u) for u in unknown)}, not a component of the lock "
                       f"({', '.join(sorted(names))})", DAMAGED)


def resolve_lock(lock: Any, path: Path, where: str = "lock") -> ResolvedSpec:
    """``resolve_from_lock`` of a checked lock (``check_lock``); what it still cannot read is a ``RunError``
    naming ``path``."""
    from ..spec.frontend import resolve_from_lock

    check_lock(lock, path, where)
    try:
        return resolve_from_lock(lock)
    except SpecError as err:
        first = err.diagnostics[0]
        raise RunError(f"{path}: the spec in its {where} is invalid: {first.message}", first.hint or DAMAGED) from None
    except HybridcError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise RunError(f"{path}: its {where} cannot be read: {type(err).__name__}: {first_line(err)}",
                       DAMAGED) from None


def read_export_record(directory: Path) -> ResolvedSpec | None:
    """The spec of the hybrid a plain export came from (its ``hybridc.json``), checked; None without one."""
    path = Path(directory) / EXPORT_RECORD
    if not path.exists():
        return None
    record = read_json(path)
    if "lock" not in record:
        raise RunError(f"{path} has no lock (the hybrid this model was exported from)", DAMAGED)
    resolved = resolve_lock(record["lock"], path)
    check_selection(record.get("selection"), resolved.names, path)
    return resolved


def check_hybrid_config(data: Mapping[str, Any], path: Path) -> ResolvedSpec:
    """A hybrid's config (``config.json`` read by ``read_config``): its lock and selection checked, resolved."""
    if "lock" not in data:
        raise RunError(f"{path} has no lock (the spec of the hybrid)", DAMAGED)
    resolved = resolve_lock(data["lock"], path)
    check_selection(data.get("selection"), resolved.names, path)
    return resolved


def refuse_plain(directory: Path, data: Mapping[str, Any]) -> None:
    """A ``RunError`` unless ``config.json`` (``data``) is a hybrid's."""
    model_type = data.get("model_type")
    if model_type != "hybridc":
        what = f"a plain {model_type} model" if isinstance(model_type, str) else "a config without a model_type"
        raise RunError(f"{directory} holds {what}, not a hybrid",
                       "load it with transformers' AutoModelForCausalLM; this command needs a hybrid")


# ---- the weights files ----------------------------------------------------------------------------------------

def _roots(directory: Path) -> list[Path]:
    """Where a directory's weights may be: inside it (links followed); a Hugging Face cache snapshot's files are
    links into its repository's ``blobs/``."""
    roots = [directory.resolve()]
    if directory.resolve().parent.name == "snapshots":
        roots.append(directory.resolve().parent.parent / "blobs")
    return roots


def _inside(directory: Path, entry: str, what: str) -> Path:
    """``directory / entry`` if it is a regular file inside ``directory`` (after links); else a ``RunError``
    saying ``what`` (who names it) and where it leads."""
    path = directory / entry
    real = path.resolve()
    if Path(entry).is_absolute() or not any(real.is_relative_to(root) for root in _roots(directory)):
        lexical = Path(entry).is_absolute() or ".." in Path(entry).parts
        where = "which is" if lexical else f"a link to {real},"
        raise RunError(f"{what} {entry!r}, {where} outside {directory}",
                       "a model directory's weights must be files inside it; save the model again")
    if not real.is_file():
        raise RunError(f"{what} {entry!r}, which is not a file in {directory}", DAMAGED)
    return path


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files transformers loads from ``directory``: ``model.safetensors``, else those its index
    names. Each must be a file inside the directory (an index naming ``../x``, an absolute path or a link out
    of the directory is refused); an index must be well formed even beside ``model.safetensors``."""
    directory = Path(directory)
    index = directory / WEIGHTS_INDEX
    shards: list[Path] = []
    if index.exists():
        data = read_json(index)
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) and v for v in weight_map.values()):
            raise RunError(f"{index}: weight_map is not a mapping of tensor names to file names", DAMAGED)
        for tensor, entry in weight_map.items():
            shards.append(_inside(directory, entry, f"{index} (tensor {tensor!r}) names"))
    if (directory / WEIGHTS).exists():
        return [_inside(directory, WEIGHTS, f"{directory} holds")]
    if not shards:
        raise RunError(f"{directory} holds no model.safetensors", DAMAGED)
    return sorted(set(shards))


def file_tensors(files: Iterable[Path], directory: Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from the headers of safetensors ``files`` (nothing is loaded)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        except Exception as err:  # a truncated or foreign file
            raise RunError(f"cannot load the model in {directory}: {path.name} is not a complete safetensors file "
                           f"({type(err).__name__}: {first_line(err)})", DAMAGED) from None
    return shapes


def _few(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")


def refuse_tensors(directory: Path, missing: Iterable[str] = (), unexpected: Iterable[str] = (),
                   mismatched: Iterable[str] = ()) -> None:
    """A ``RunError`` naming the tensors the weights lack, hold in excess, or hold in another shape (nothing
    when all three are empty): a model is never loaded with tensors re-initialised or left out."""
    parts = [f"{label} {_few(names)}" for label, names in (("missing", set(missing)), ("unexpected", set(unexpected)),
                                                           ("of another shape", set(mismatched))) if names]
    if parts:
        raise RunError(f"the weights in {directory} do not match the model its config.json describes: "
                       + "; ".join(parts), DAMAGED)


def _renamed(key: str, key_mapping: Mapping[str, str] | None) -> str:
    for pattern, replacement in (key_mapping or {}).items():
        key = re.sub(pattern, replacement, key)
    return key


def _missing_tensors(model: torch.nn.Module, found: Mapping[str, Any]) -> list[str]:
    """The model's tensors ``found`` lacks, by their first name (a tensor shared under several names, a tied
    head, counts as present under any of them)."""
    names: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        names.setdefault(id(tensor), []).append(name)
    return [group[0] for group in names.values() if not any(n in found for n in group)]


def check_tensors(model: torch.nn.Module, directory: Path, key_mapping: Mapping[str, str] | None = None) -> None:
    """The weights files of ``directory`` hold exactly the tensors of ``model`` (built on the meta device: no
    memory), in its shapes, before anything is loaded. A tensor shared under several names (a tied head) is
    in the file under one of them; ``key_mapping`` renames the file's names first (``LEGACY_KEYS``)."""
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict(keep_vars=True).items()}
    found = {_renamed(k, key_mapping): shape for k, shape in file_tensors(weight_files(directory), directory).items()}
    missing = _missing_tensors(model, found)
    unexpected = [k for k in found if k not in shapes]
    mismatched = [f"{k} {list(s)} (the model's is {list(shapes[k])})" for k, s in found.items()
                  if k in shapes and s != shapes[k]]
    refuse_tensors(directory, missing, unexpected, mismatched)


def check_parameter_count(model: torch.nn.Module, directory: Path) -> None:
    """The weights files hold at least as many values as ``model`` (built on the meta device) has parameters:
    else tensors are missing, or the config's sizes are not the weights' (a vocabulary of 10**9), and loading
    would allocate the difference. Refused before anything is allocated, naming the tensors missing by name."""
    found = file_tensors(weight_files(directory), directory)
    held = sum(math.prod(shape) for shape in found.values())
    needed = sum(p.numel() for p in model.parameters())
    if needed <= held:
        return
    refuse_tensors(directory, missing=_missing_tensors(model, found))
    raise RunError(f"the weights in {directory} hold {held:,} values, fewer than the {needed:,} parameters of the "
                   "model its config.json describes (its sizes are not the weights')", DAMAGED)


def check_loading_info(info: Mapping[str, Any], directory) -> None:
    """transformers' loading report (``output_loading_info=True``): a tensor missing (it would be initialised
    at random), unexpected or of another shape is a ``RunError``."""
    mismatched = [m[0] if isinstance(m, tuple) else str(m) for m in info.get("mismatched_keys") or ()]
    refuse_tensors(directory, info.get("missing_keys") or (), info.get("unexpected_keys") or (), mismatched)
    errors = [str(e).strip() for e in info.get("error_msgs") or () if str(e).strip()]
    if errors:
        raise RunError(f"cannot load the model in {directory}: {errors[0].splitlines()[0]}", DAMAGED)


def load_config(load, directory: Path):
    """``load(directory)``: a transformers config read from ``config.json``, a failure (a model type transformers
    does not know, a value its config class refuses) reported as a ``RunError``."""
    try:
        return load(directory)
    except HybridcError:
        raise
    except Exception as err:
        raise RunError(f"cannot load the model in {directory}: {type(err).__name__}: {first_line(err)}",
                       DAMAGED) from None


def build_on_meta(build, directory: Path):
    """``build()`` on the meta device (shapes only, no memory), a failure reported as a ``RunError``."""
    import torch

    try:
        with torch.device("meta"):
            return build()
    except HybridcError:
        raise
    except Exception as err:
        raise RunError(f"cannot build the model {directory}/config.json describes: {type(err).__name__}: "
                       f"{first_line(err)}", DAMAGED) from None


EXPORT_RECORD = "hybridc.json"  # beside a plain export: the hybrid it came from (its lock and selection)
