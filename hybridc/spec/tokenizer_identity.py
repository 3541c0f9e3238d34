"""Which tokenizer a set of tokenizer files is, read from the files alone (torch-free, no tokenizer library).

Two tokenizers are the same when their vocabularies (token string -> id), merges and added tokens are
the same: ``TokenizerIdentity.fingerprint`` hashes exactly those, in a canonical order, so the same
tokenizer saved by different library versions (other JSON layout, other file names) has one
fingerprint. ``bytes`` is a tokenizer like any other: its identity is that of the byte-level vocabulary
hybridc saves for it (byte b is id b; <pad>, <bos>, <eos> are 256, 257, 258).

Read, in this order: ``tokenizer.json`` (the fast-tokenizer format); ``vocab.json`` + ``merges.txt``
(GPT-2-style slow BPE); ``vocab.txt`` (WordPiece); ``tokenizer.model`` (SentencePiece, fingerprinted by
its bytes: its vocabulary is a protobuf this module does not parse).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_TOKENIZER_FILE = 64 * 1024 * 1024  # larger files are not read (a tokenizer.json of 250k tokens is ~20 MB)
BYTE_SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")  # ids 256, 257, 258 of the bytes tokenizer


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
              extra: bytes = b"") -> TokenizerIdentity:
    whole = {**vocab, **added}
    canonical = json.dumps({"kind": kind, "vocab": sorted(whole.items(), key=lambda kv: (kv[1], kv[0])),
                            "merges": merges}, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8") + extra).hexdigest()
    size = max(whole.values(), default=-1) + 1
    return TokenizerIdentity(digest, size, kind, source, whole)


def bytes_identity() -> TokenizerIdentity:
    vocab = {char: b for b, char in byte_to_unicode().items()}
    added = {token: 256 + i for i, token in enumerate(BYTE_SPECIAL_TOKENS)}
    return _identity("bpe", vocab, [], added, "bytes")


def _read_small(path: Path) -> bytes:
    """A tokenizer file's bytes; ValueError for anything but a regular file of sane size (a FIFO or
    a link to /dev/zero must not hang or exhaust memory)."""
    if not path.is_file():
        raise ValueError(f"{path.name} is not a regular file")
    with open(path, "rb") as f:
        data = f.read(MAX_TOKENIZER_FILE + 1)
    if len(data) > MAX_TOKENIZER_FILE:
        raise ValueError(f"{path.name} is larger than {MAX_TOKENIZER_FILE // (1024 * 1024)} MiB")
    return data


def _merges(raw: Any) -> list[str]:
    """Merges as "a b" strings, whichever way they were saved (strings, or pairs in newer files)."""
    out = []
    for m in raw or ():
        out.append(" ".join(m) if isinstance(m, (list, tuple)) else str(m))
    return out


def identity_of_file(path: Path) -> TokenizerIdentity:
    """The identity of a ``tokenizer.json`` file."""
    data = json.loads(_read_small(path).decode("utf-8"))
    model = data.get("model") or {}
    kind = str(model.get("type") or "unknown").lower()
    raw_vocab = model.get("vocab")
    if isinstance(raw_vocab, dict):
        vocab = {str(k): int(v) for k, v in raw_vocab.items()}
    elif isinstance(raw_vocab, list):  # Unigram: [[piece, score], ...], id = position
        vocab = {str(entry[0] if isinstance(entry, (list, tuple)) else entry): i for i, entry in enumerate(raw_vocab)}
    else:
        raise ValueError("tokenizer.json has no model.vocab")
    added = {str(t["content"]): int(t["id"]) for t in data.get("added_tokens") or () if "content" in t and "id" in t}
    return _identity(kind, vocab, _merges(model.get("merges")), added, str(path))


def _from_slow_bpe(vocab_path: Path, merges_path: Path) -> TokenizerIdentity:
    vocab = {str(k): int(v) for k, v in json.loads(_read_small(vocab_path).decode("utf-8")).items()}
    lines = _read_small(merges_path).decode("utf-8").splitlines()
    merges = [line for line in lines if line and not line.startswith("#version")]
    return _identity("bpe", vocab, merges, {}, f"{vocab_path} + {merges_path.name}")


def _from_wordpiece(path: Path) -> TokenizerIdentity:
    tokens = _read_small(path).decode("utf-8").splitlines()
    return _identity("wordpiece", {t: i for i, t in enumerate(tokens)}, [], {}, str(path))


def _from_sentencepiece(path: Path) -> TokenizerIdentity:
    return _identity("sentencepiece", {}, [], {}, str(path), extra=_read_small(path))


def identity_of_directory(directory: Path) -> TokenizerIdentity | None:
    """The identity of the tokenizer saved in ``directory``; None when it holds no tokenizer files.
    Raises ValueError when the files are there but cannot be read."""
    directory = Path(directory)
    if (directory / "tokenizer.json").exists():
        return identity_of_file(directory / "tokenizer.json")
    if (directory / "vocab.json").exists() and (directory / "merges.txt").exists():
        return _from_slow_bpe(directory / "vocab.json", directory / "merges.txt")
    if (directory / "vocab.txt").exists():
        return _from_wordpiece(directory / "vocab.txt")
    if (directory / "tokenizer.model").exists():
        return _from_sentencepiece(directory / "tokenizer.model")
    return None


def identity_on_hub(repo: str, revision: str | None) -> TokenizerIdentity | None:
    """The identity of a Hub repository's tokenizer (files fetched through huggingface_hub's cache, which
    works offline once they were downloaded); None when the repository has (or the cache holds) none."""
    from ..components import hub

    def fetch(name: str) -> Path | None:
        try:
            return hub.download(repo, name, revision)  # the cache only when the Hub does not answer
        except Exception:  # missing file, offline without it, no access: the check cannot be made
            return None

    found = fetch("tokenizer.json")
    if found is not None:
        return identity_of_file(found)
    vocab, merges = fetch("vocab.json"), fetch("merges.txt")
    if vocab is not None and merges is not None:
        return _from_slow_bpe(vocab, merges)
    for name, read in (("vocab.txt", _from_wordpiece), ("tokenizer.model", _from_sentencepiece)):
        found = fetch(name)
        if found is not None:
            return read(found)
    return None
