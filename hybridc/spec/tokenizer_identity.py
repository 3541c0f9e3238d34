"""Which tokenizer a set of tokenizer files is, read from the files alone (torch-free, no tokenizer library).

Two tokenizers are the same when their vocabularies (token string -> id), merges and added tokens are
the same: ``TokenizerIdentity.fingerprint`` hashes exactly those, in a canonical order, so the same
tokenizer saved by different library versions (other JSON layout, other file names) has one
fingerprint. ``bytes`` is a tokenizer like any other: its identity is that of the byte-level vocabulary
hybridc saves for it (byte b is id b; <pad>, <bos>, <eos> are 256, 257, 258).

Read, in this order: ``tokenizer.json`` (the fast-tokenizer format); ``vocab.json`` + ``merges.txt``
(GPT-2-style slow BPE); ``vocab.txt`` (WordPiece); ``tokenizer.model`` / ``spiece.model`` (SentencePiece:
its pieces are read from the protobuf, fingerprinted with its bytes). Tokens that ``tokenizer_config.json``
and ``special_tokens_map.json`` name but the vocabulary lacks are added after it, as transformers does.

Every file is read defensively, through ``read_tokenizer_file`` (regular files of at most 64 MiB): each
level of the JSON is type-checked, JSON nested too deeply to parse is refused, and the models are checked
the way the ``tokenizers`` library builds them (BPE, WordPiece, WordLevel, Unigram), so that a file the
library would refuse, or would crash on (a BPE merge whose result is not in the vocabulary panics in its
Rust code), is refused here first. Token ids are bounded: ``0 <= id < MAX_VOCAB`` (2**24). Problems raise
``TokenizerFileError`` (a ``ValueError``) naming the file and what is wrong, with a hint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..io import NotRegularFile, read_regular

MAX_TOKENIZER_FILE = 64 * 1024 * 1024  # larger files are not read (a tokenizer.json of 250k tokens is ~20 MB)
MAX_VOCAB = 1 << 24  # token ids are 0 <= id < 2**24 = 16,777,216 (the largest real vocabularies have ~260k)
BYTE_SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")  # ids 256, 257, 258 of the bytes tokenizer
MODELS = ("BPE", "WordPiece", "WordLevel", "Unigram")  # the tokenizers library's models

ID_HINT = f"token ids are whole numbers 0 <= id < {MAX_VOCAB:,} (2**24), each used by one token"
RESAVE_HINT = "re-save the tokenizer with tokenizer.save_pretrained(dir), or point 'tokenizer' elsewhere"
SENTENCEPIECE_FILES = ("tokenizer.model", "spiece.model")
CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class TokenizerFileError(ValueError):
    """A tokenizer file hybridc refuses: ``str(err)`` names the file and says what is wrong; ``hint`` how to
    fix it."""

    def __init__(self, message: str, hint: str = RESAVE_HINT):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class TokenizerIdentity:
    """What identifies a tokenizer: its canonical vocabulary's fingerprint, and what was read."""

    fingerprint: str
    size: int  # ids in use: max id + 1
    kind: str  # bpe | wordpiece | unigram | wordlevel | sentencepiece | bytes
    source: str = field(compare=False)  # the file(s) read, for messages
    vocab: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # token string -> id

    def short(self) -> str:
        kind = "bytes" if self.source == "bytes" else self.kind
        return f"{kind}, {self.size:,} ids, fingerprint {self.fingerprint[:12]}"


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map of the 256 byte values to printable characters (what the ``tokenizers``
    library's ByteLevel pre-tokenizer produces)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _identity(kind: str, vocab: dict[str, int], merges: list[str], added: dict[str, int], source: str,
              extra: bytes = b"", size: int | None = None) -> TokenizerIdentity:
    whole = {**vocab, **added}
    canonical = json.dumps({"kind": kind, "vocab": sorted(whole.items(), key=lambda kv: (kv[1], kv[0])),
                            "merges": merges}, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8") + extra).hexdigest()
    size = max(max(whole.values(), default=-1) + 1, size or 0)
    return TokenizerIdentity(digest, size, kind, source, whole)


def bytes_identity() -> TokenizerIdentity:
    vocab = {char: b for b, char in byte_to_unicode().items()}
    added = {token: 256 + i for i, token in enumerate(BYTE_SPECIAL_TOKENS)}
    return _identity("bpe", vocab, [], added, "bytes")


# ---- reading files ---------------------------------------------------------------------------------

def read_tokenizer_file(path: Path) -> bytes:
    """A tokenizer file's bytes: the one place hybridc opens tokenizer files (validate and the runtime
    checks alike). ``TokenizerFileError`` for anything but a regular file of at most 64 MiB (a FIFO or a
    link to /dev/zero must not hang or exhaust memory); ``OSError`` when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise TokenizerFileError(f"{path.name} is not a regular file", "tokenizer files are regular files")
    try:  # (opened without blocking and checked once open: a file swapped for a FIFO cannot hang)
        data = read_regular(path, MAX_TOKENIZER_FILE)
    except NotRegularFile:
        raise TokenizerFileError(f"{path.name} is not a regular file", "tokenizer files are regular files") from None
    if len(data) > MAX_TOKENIZER_FILE:
        raise TokenizerFileError(f"{path.name} is larger than {MAX_TOKENIZER_FILE // (1024 * 1024)} MiB",
                                 f"tokenizer files are limited to {MAX_TOKENIZER_FILE // (1024 * 1024)} MiB "
                                 "(a tokenizer.json of 250k tokens is ~20 MB)")
    return data


def _text(path: Path) -> str:
    data = read_tokenizer_file(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TokenizerFileError(f"{path.name} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                                 f"{err.start})", "tokenizer files are UTF-8; " + RESAVE_HINT) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json(path: Path) -> Any:
    text = _text(path)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise TokenizerFileError(f"{path.name} nests arrays or objects too deeply to be read") from None
    except ValueError as err:  # JSONDecodeError, NaN/Infinity, integers of more than 4300 digits
        raise TokenizerFileError(f"{path.name} is not valid JSON: {err}") from None


def _lines(text: str) -> list[str]:
    """Lines as Python's text files give them (universal newlines), without the line ends."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# ---- type checks -----------------------------------------------------------------------------------

def _a(value: Any) -> str:
    """What a JSON value is, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}" if len(repr(value)) <= 30 else "a huge number"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _show(token: str) -> str:
    shown = json.dumps(token, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:36] + '..."'


def _token_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenizerFileError(f"{where} is {_a(value)}, not a token id", ID_HINT)
    if not 0 <= value < MAX_VOCAB:
        shown = value if abs(value) < 10**30 else "a huge number"
        raise TokenizerFileError(f"{where} is {shown}, outside 0 <= id < {MAX_VOCAB:,}", ID_HINT)
    return value


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise TokenizerFileError(f"{where} is {_a(value)}, not an object")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise TokenizerFileError(f"{where} is {_a(value)}, not a list")
    return value


def _string(value: Any, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TokenizerFileError(f"{where} is {_a(value)}, not a string")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise TokenizerFileError(f"{where} is {_a(value)}, not true or false")
    return value


def _required(obj: dict, key: str, where: str) -> Any:
    if key not in obj:
        raise TokenizerFileError(f"{where} has no \"{key}\" (the tokenizers library requires it)")
    return obj[key]


def _vocab_map(raw: Any, where: str) -> dict[str, int]:
    """A {token: id} vocabulary: ids bounded, no id used by two tokens."""
    vocab = _object(raw, where)
    for token, value in vocab.items():  # the common case fast; messages only for the first bad entry
        if type(value) is not int or not 0 <= value < MAX_VOCAB:
            _token_id(value, f"{where}[{_show(token)}]")
    if len(set(vocab.values())) != len(vocab):
        owner: dict[int, str] = {}
        for token, i in vocab.items():
            if i in owner:
                raise TokenizerFileError(f"{where}: {_show(owner[i])} and {_show(token)} both have id {i}", ID_HINT)
            owner[i] = token
    return dict(vocab)


def _empty(size: int, where: str) -> None:
    if size == 0:
        raise TokenizerFileError(f"{where} defines no tokens", "a tokenizer needs a vocabulary; " + RESAVE_HINT)
    if size > MAX_VOCAB:
        raise TokenizerFileError(f"{where} has {size:,} tokens, more than {MAX_VOCAB:,}", ID_HINT)


# ---- the models of tokenizer.json ------------------------------------------------------------------

def _merge_pairs(raw: Any, where: str) -> list[tuple[str, str]]:
    """Merges as the tokenizers library reads them: all "a b" strings (one space), or all [a, b] pairs."""
    merges = _list(raw, where)
    if all(type(m) is str for m in merges):
        lines = [m for m in merges if not m.startswith("#version")]
        pairs = [m.split(" ") for m in lines]
        for rank, parts in enumerate(pairs, start=1):
            if len(parts) != 2:
                raise TokenizerFileError(f"{where}: merge {rank} ({_show(lines[rank - 1])}) is not two tokens "
                                         "separated by one space")
        return [(a, b) for a, b in pairs]
    if all(type(m) is list and len(m) == 2 and type(m[0]) is str and type(m[1]) is str for m in merges):
        return [(a, b) for a, b in merges]
    bad = next(i for i, m in enumerate(merges) if not isinstance(m, str)) if any(isinstance(m, str) for m in merges) \
        else next(i for i, m in enumerate(merges) if not (isinstance(m, list) and len(m) == 2
                                                          and all(isinstance(p, str) for p in m)))
    raise TokenizerFileError(f"{where}[{bad}] is {_a(merges[bad])}: merges are all \"a b\" strings or all "
                             "[a, b] pairs of strings")


def _check_merges(pairs: list[tuple[str, str]], vocab: dict[str, int], prefix: str | None, where: str) -> list[str]:
    """Every merge's tokens and its result are in the vocabulary (a missing result makes the tokenizers
    library panic, or abort the process)."""
    cut = len(prefix.encode("utf-8")) if prefix else 0
    if not cut and all(a in vocab and b in vocab and a + b in vocab for a, b in pairs):
        return [f"{a} {b}" for a, b in pairs]  # the common case, fast
    for rank, (a, b) in enumerate(pairs, start=1):
        for token in (a, b):
            if token not in vocab:
                raise TokenizerFileError(f"{where}: merge {rank} ({_show(a + ' ' + b)}) uses {_show(token)}, which "
                                         "is not in the vocabulary")
        tail = b.encode("utf-8")
        try:
            if len(tail) < cut:
                raise UnicodeDecodeError("utf-8", tail, 0, len(tail), "shorter than the prefix")
            result = a + tail[cut:].decode("utf-8")
        except UnicodeDecodeError:
            raise TokenizerFileError(f"{where}: merge {rank} ({_show(a + ' ' + b)}): {_show(b)} does not start "
                                     f"with the continuing_subword_prefix {_show(prefix or '')}") from None
        if result not in vocab:
            raise TokenizerFileError(f"{where}: merge {rank} ({_show(a + ' ' + b)}) makes {_show(result)}, which "
                                     "is not in the vocabulary")
    return [f"{a} {b}" for a, b in pairs]


def _bpe(model: dict, where: str) -> tuple[dict[str, int], list[str], int]:
    vocab = _vocab_map(_required(model, "vocab", where), f"{where}.vocab")
    if "merges" not in model:
        raise TokenizerFileError(f"{where} is a BPE model without \"merges\" (the tokenizers library refuses it)",
                                 "save it with its merges (\"merges\": [] when there are none), or use a WordLevel "
                                 "model for a vocabulary without merges")
    pairs = _merge_pairs(model["merges"], f"{where}.merges")
    for key in ("unk_token", "continuing_subword_prefix", "end_of_word_suffix"):
        _string(model.get(key), f"{where}.{key}", optional=True)
    for key in ("fuse_unk", "byte_fallback", "ignore_merges"):
        if key in model:
            _boolean(model[key], f"{where}.{key}")
    dropout = model.get("dropout")
    if dropout is not None and (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
                                or not 0 <= dropout <= 1):
        raise TokenizerFileError(f"{where}.dropout is {_a(dropout)}, not a probability between 0 and 1")
    merges = _check_merges(pairs, vocab, model.get("continuing_subword_prefix"), where)
    return vocab, merges, 0


def _wordpiece(model: dict, where: str) -> tuple[dict[str, int], list[str], int]:
    vocab = _vocab_map(_required(model, "vocab", where), f"{where}.vocab")
    _string(_required(model, "unk_token", where), f"{where}.unk_token")
    _string(_required(model, "continuing_subword_prefix", where), f"{where}.continuing_subword_prefix")
    longest = _required(model, "max_input_chars_per_word", where)
    if isinstance(longest, bool) or not isinstance(longest, int) or longest < 0:
        raise TokenizerFileError(f"{where}.max_input_chars_per_word is {_a(longest)}, not a whole number >= 0")
    return vocab, [], 0


def _wordlevel(model: dict, where: str) -> tuple[dict[str, int], list[str], int]:
    vocab = _vocab_map(_required(model, "vocab", where), f"{where}.vocab")
    _string(_required(model, "unk_token", where), f"{where}.unk_token")
    return vocab, [], 0


def _unigram(model: dict, where: str) -> tuple[dict[str, int], list[str], int]:
    entries = _list(_required(model, "vocab", where), f"{where}.vocab")
    if len(entries) > MAX_VOCAB:
        raise TokenizerFileError(f"{where}.vocab has {len(entries):,} pieces, more than {MAX_VOCAB:,}", ID_HINT)
    vocab: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 2):
            shown = f"a list of {len(entry)} items" if isinstance(entry, list) else _a(entry)
            raise TokenizerFileError(f"{where}.vocab[{i}] is {shown}, not a [piece, score] pair")
        piece, score = entry
        _string(piece, f"{where}.vocab[{i}][0]")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise TokenizerFileError(f"{where}.vocab[{i}][1] is {_a(score)}, not a score (a number)")
        vocab[piece] = i
    unk = model.get("unk_id")
    if unk is not None:
        if isinstance(unk, bool) or not isinstance(unk, int) or not 0 <= unk < len(entries):
            raise TokenizerFileError(f"{where}.unk_id is {_a(unk)}, not the position of a piece "
                                     f"(0..{len(entries) - 1})")
    if "byte_fallback" in model:
        _boolean(model["byte_fallback"], f"{where}.byte_fallback")
    return vocab, [], len(entries)


READERS: dict[str, Callable[[dict, str], tuple[dict[str, int], list[str], int]]] = {
    "BPE": _bpe, "WordPiece": _wordpiece, "WordLevel": _wordlevel, "Unigram": _unigram}


def _model(raw: Any, where: str) -> tuple[str, dict[str, int], list[str], int]:
    """(kind, vocab, merges, size at least) of a tokenizer.json ``model``."""
    model = _object(raw, where)
    kind = model.get("type")
    if "type" not in model:  # the library then tries each model in turn
        problems = []
        for name, read in READERS.items():
            try:
                return (name.lower(), *read(model, where))
            except TokenizerFileError as err:
                problems.append(f"not {name}: {err.message.removeprefix(where).lstrip(' :.')}")
        raise TokenizerFileError(f"{where} has no \"type\" and is none of {', '.join(MODELS)} ({problems[0]})",
                                 f"set {where}.type to one of {', '.join(MODELS)}")
    if not isinstance(kind, str) or kind not in READERS:
        near = next((m for m in MODELS if isinstance(kind, str) and m.lower() == kind.lower()), None)
        raise TokenizerFileError(f"{where}.type is {_a(kind)}, not one of the tokenizers library's models "
                                 f"({', '.join(MODELS)})",
                                 f"did you mean {near!r}? (the type is case-sensitive)" if near else
                                 "hybridc reads BPE, WordPiece, WordLevel and Unigram tokenizers")
    return (kind.lower(), *READERS[kind](model, where))


ADDED_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")


def _added_tokens(raw: Any, vocab: dict[str, int], where: str) -> dict[str, int]:
    """Added tokens with the ids the tokenizers library gives them: a token of the model's vocabulary
    keeps its id, a new one takes an id no other token has (so the vocabulary's size bounds every id
    the library hands out)."""
    added: dict[str, int] = {}
    owner = {i: token for token, i in vocab.items()}
    for n, entry in enumerate(_list(raw, where)):
        at = f"{where}[{n}]"
        entry = _object(entry, at)
        content = _string(_required(entry, "content", at), f"{at}.content")
        i = _token_id(_required(entry, "id", at), f"{at}.id")
        for flag in ADDED_FLAGS:
            _boolean(_required(entry, flag, at), f"{at}.{flag}")
        if content == "":
            continue  # the library skips empty tokens
        known = vocab.get(content, added.get(content))
        if known is not None and known != i:
            earlier = "in the vocabulary" if content in vocab else "in an earlier added token"
            raise TokenizerFileError(f"{at}: {_show(content)} has id {i} here but id {known} {earlier}", ID_HINT)
        if known is None and i in owner:
            raise TokenizerFileError(f"{at}: {_show(content)} has id {i}, which is already {_show(owner[i])}", ID_HINT)
        owner[i] = content
        added[content] = i
    return added


TOP_LEVEL_PARTS = ("truncation", "padding", "normalizer", "pre_tokenizer", "post_processor", "decoder")
TOP_LEVEL_KEYS = ("version", *TOP_LEVEL_PARTS[:2], "added_tokens", *TOP_LEVEL_PARTS[2:], "model")


def _fast(path: Path) -> TokenizerIdentity:
    data = _object(_json(path), path.name)
    name = path.name
    version = data.get("version")
    if "version" in data and version != "1.0":
        raise TokenizerFileError(f"{name}: version is {_a(version)}, not \"1.0\" (the one the tokenizers library "
                                 "reads)")
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise TokenizerFileError(f"{name} has the unknown key {_show(unknown[0])} (the tokenizers library refuses "
                                 f"keys other than {', '.join(TOP_LEVEL_KEYS)})")
    for part in TOP_LEVEL_PARTS:
        if data.get(part) is not None:
            _object(data[part], f"{name}: {part}")
    if "model" not in data:
        raise TokenizerFileError(f"{name} has no \"model\" (the vocabulary)")
    kind, vocab, merges, size = _model(data["model"], f"{name}: model")
    if not vocab:
        _empty(0, f"{name}: model")
    added = _added_tokens(data["added_tokens"], vocab, f"{name}: added_tokens") if "added_tokens" in data else {}
    identity = _identity(kind, vocab, merges, added, str(path), size=size)
    _empty(identity.size, name)
    return identity


def identity_of_file(path: Path) -> TokenizerIdentity:
    """The identity of a ``tokenizer.json`` file. Raises ``TokenizerFileError`` (a ValueError) or OSError."""
    return _cached(_fast, Path(path))


# ---- slow files ------------------------------------------------------------------------------------

def _from_slow_bpe(vocab_path: Path, merges_path: Path) -> TokenizerIdentity:
    vocab = _vocab_map(_json(vocab_path), vocab_path.name)
    pairs = []
    for number, line in enumerate(_lines(_text(merges_path)), start=1):
        if not line or line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise TokenizerFileError(f"{merges_path.name}: line {number} ({_show(line)}) is not two tokens "
                                     "separated by one space")
        pairs.append((parts[0], parts[1]))
    merges = _check_merges(pairs, vocab, None, merges_path.name)
    identity = _identity("bpe", vocab, merges, {}, f"{vocab_path} + {merges_path.name}")
    _empty(identity.size, vocab_path.name)
    return identity


def _from_wordpiece(path: Path) -> TokenizerIdentity:
    tokens = _lines(_text(path))
    _empty(len(tokens), path.name)
    return _identity("wordpiece", {t: i for i, t in enumerate(tokens)}, [], {}, str(path), size=len(tokens))


# ---- SentencePiece (a protobuf ModelProto, read without the protobuf library) -----------------------

class _Truncated(Exception):
    pass


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _Truncated("the file ends inside a number")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise _Truncated("a number is longer than 10 bytes")


def _fields(data: memoryview):
    """(field number, wire type, value) of a protobuf message: value an int (varint) or a memoryview."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Truncated("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(data):
                raise _Truncated("the file ends inside a number")
            value, pos = data[pos:pos + width], pos + width
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _Truncated("a field is longer than the rest of the file")
            value, pos = data[pos:pos + length], pos + length
        else:
            raise _Truncated(f"wire type {wire}")
        yield number, wire, value


def sentencepiece_pieces(data: bytes, name: str = "tokenizer.model") -> list[str]:
    """The pieces of a SentencePiece model, in id order (piece i is id i)."""
    pieces: list[str] = []
    try:
        for number, wire, value in _fields(memoryview(data)):
            if number != 1:
                continue
            if wire != 2:
                raise _Truncated("a piece is not a message")
            piece = None
            for n, w, v in _fields(value):
                if n == 1:
                    if w != 2:
                        raise _Truncated(f"piece {len(pieces)} has no text")
                    piece = bytes(v).decode("utf-8")
            if piece is None:
                raise _Truncated(f"piece {len(pieces)} has no text")
            pieces.append(piece)
            if len(pieces) > MAX_VOCAB:
                raise TokenizerFileError(f"{name} has more than {MAX_VOCAB:,} pieces", ID_HINT)
    except (_Truncated, UnicodeDecodeError) as err:
        raise TokenizerFileError(f"{name} is not a SentencePiece model ({err})",
                                 "a tokenizer.model is a SentencePiece model (a protobuf); save the tokenizer "
                                 "with tokenizer.save_pretrained(dir) to get a tokenizer.json") from None
    if not pieces:
        raise TokenizerFileError(f"{name} holds no pieces (is it a SentencePiece model?)",
                                 "a tokenizer.model is a SentencePiece model (a protobuf); save the tokenizer "
                                 "with tokenizer.save_pretrained(dir) to get a tokenizer.json")
    return pieces


SENTENCEPIECE_NEEDED = ("it is a SentencePiece model (tokenizer.model) without a tokenizer.json, and transformers "
                        "cannot read its vocabulary without the sentencepiece package")
SENTENCEPIECE_HINT = ("pip install sentencepiece, or save a tokenizer.json beside it (load it where sentencepiece "
                      "is installed and call tokenizer.save_pretrained(dir))")


def sentencepiece_available() -> bool:
    """Whether transformers can read a SentencePiece-only tokenizer here (it needs the sentencepiece package)."""
    import importlib.util

    return importlib.util.find_spec("sentencepiece") is not None


def _from_sentencepiece(path: Path) -> TokenizerIdentity:
    data = read_tokenizer_file(path)
    pieces = sentencepiece_pieces(data, path.name)
    return _identity("sentencepiece", {p: i for i, p in enumerate(pieces)}, [], {}, str(path), extra=data,
                     size=len(pieces))


# ---- tokens named by tokenizer_config.json / special_tokens_map.json --------------------------------

def _named_token(value: Any, where: str) -> str | None:
    """A special token as transformers takes it: a string, or an AddedToken object ({"__type": "AddedToken",
    "content": ...}); None when there is none."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict) and value.get("__type") == "AddedToken":
        content = value.get("content")
        return _string(content, f"{where}.content", optional=True) or None
    raise TokenizerFileError(f"{where} is {_a(value)}, not a token (a string)")


def config_tokens(path: Path) -> list[str]:
    """The tokens a ``tokenizer_config.json`` or ``special_tokens_map.json`` names (transformers adds those the
    vocabulary lacks), its shape checked where transformers would fail on it."""
    name = path.name
    data = _object(_json(path), name)
    tokens: list[str | None] = []
    for key in SPECIAL_TOKEN_KEYS:
        tokens.append(_named_token(data.get(key), f"{name}: {key}"))
    for key in ("additional_special_tokens", "extra_special_tokens"):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, dict) and key == "extra_special_tokens":
            items = list(value.items())
        elif isinstance(value, list):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            raise TokenizerFileError(f"{name}: {key} is {_a(value)}, not a list of tokens")
        tokens.extend(_named_token(v, f"{name}: {key}[{_show(k)}]") for k, v in items)
    decoder = data.get("added_tokens_decoder")
    if decoder is not None:
        for key, entry in _object(decoder, f"{name}: added_tokens_decoder").items():
            at = f"{name}: added_tokens_decoder[{_show(key)}]"
            try:
                int(key)
            except ValueError:
                raise TokenizerFileError(f"{at}: the key is not a token id", ID_HINT) from None
            entry = _object(entry, at)
            tokens.append(_string(entry.get("content"), f"{at}.content", optional=True) or None)
    if "tokenizer_class" in data:
        _string(data["tokenizer_class"], f"{name}: tokenizer_class", optional=True)
    length = data.get("model_max_length")  # transformers compares every encoding's length with it
    if length is not None and (isinstance(length, bool) or not isinstance(length, (int, float))):
        raise TokenizerFileError(f"{name}: model_max_length is {_a(length)}, not a number")
    return [t for t in tokens if t]


def _with_config_tokens(identity: TokenizerIdentity, configs: list[Path]) -> TokenizerIdentity:
    """``identity`` with the tokens its config files name but its vocabulary lacks, at the next ids."""
    extra: dict[str, int] = {}
    for path in configs:
        for token in config_tokens(path):
            if token not in identity.vocab and token not in extra:
                extra[token] = identity.size + len(extra)
    if not extra:
        return identity
    if identity.size + len(extra) > MAX_VOCAB:
        raise TokenizerFileError(f"{identity.source} with the tokens of {configs[0].name} has more than "
                                 f"{MAX_VOCAB:,} ids", ID_HINT)
    return _identity(identity.kind, identity.vocab, [], extra, identity.source,
                     extra=identity.fingerprint.encode("ascii"), size=identity.size)


# ---- a directory, a Hub repository -----------------------------------------------------------------

VOCABULARY_FILES = ("tokenizer.json", "vocab.json + merges.txt", "vocab.txt", "tokenizer.model", "spiece.model")


def _of(find: Callable[[str], Path | None], where: str) -> TokenizerIdentity | None:
    """The identity of the tokenizer whose files ``find`` gives (None for a missing file)."""
    identity = None
    found = find("tokenizer.json")
    if found is not None:
        identity = identity_of_file(found)
    else:
        vocab, merges = find("vocab.json"), find("merges.txt")
        if vocab is not None and merges is not None:
            identity = _cached(_from_slow_bpe, vocab, merges)
        elif (found := find("vocab.txt")) is not None:
            identity = _cached(_from_wordpiece, found)
        else:
            for name in SENTENCEPIECE_FILES:
                if (found := find(name)) is not None:
                    identity = _cached(_from_sentencepiece, found)
                    break
            else:
                if vocab is not None:
                    raise TokenizerFileError(f"{where} holds vocab.json but no merges.txt",
                                             "hybridc reads vocab.json as GPT-2-style BPE, with its merges.txt; "
                                             "save a tokenizer.json with tokenizer.save_pretrained(dir)")
    configs = [p for p in map(find, CONFIG_FILES) if p is not None]
    if identity is None:
        if configs:
            raise TokenizerFileError(f"{where} holds {configs[0].name} but no vocabulary file "
                                     f"({', '.join(VOCABULARY_FILES)})",
                                     "save the whole tokenizer there with tokenizer.save_pretrained(dir)")
        return None
    return _with_config_tokens(identity, configs)


def identity_of_directory(directory: Path) -> TokenizerIdentity | None:
    """The identity of the tokenizer saved in ``directory``; None when it holds no tokenizer files.
    Raises ``TokenizerFileError`` (a ValueError) when the files are there but hybridc refuses them, OSError
    when they cannot be read."""
    directory = Path(directory)

    def find(name: str) -> Path | None:
        path = directory / name
        return path if path.exists() or path.is_symlink() else None

    return _of(find, f"'{directory.name}'")


def identity_on_hub(repo: str, revision: str | None) -> TokenizerIdentity | None:
    """The identity of a Hub repository's tokenizer (files fetched through huggingface_hub's cache, which
    works offline once they were downloaded); None when the repository has (or the cache holds) none."""
    from ..components import hub

    def fetch(name: str) -> Path | None:
        try:
            return hub.download(repo, name, revision)  # the cache only when the Hub does not answer
        except Exception:  # missing file, offline without it, no access: the check cannot be made
            return None

    return _of(fetch, repo)


# ---- reading each file once per validate ------------------------------------------------------------

def _signature(path: Path) -> tuple:
    st = path.stat()
    return str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _read_once(read: Callable[..., TokenizerIdentity], *signatures: tuple) -> TokenizerIdentity:
    return read(*(Path(s[0]) for s in signatures))


def _cached(read: Callable[..., TokenizerIdentity], *paths: Path) -> TokenizerIdentity:
    """``read(*paths)``, remembered while the files stay the same (validate reads the hybrid's tokenizer for
    its size and for the agreement check). Refusals are not remembered."""
    try:
        signatures = tuple(_signature(p) for p in paths)
    except OSError:
        return read(*paths)
    return _read_once(read, *signatures)
