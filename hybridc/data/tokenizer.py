"""Tokenizers behind one small protocol: the built-in byte tokenizer and Hugging Face tokenizers.

``load_tokenizer`` reads the spec's ``tokenizer`` field:

- ``bytes``: ``ByteTokenizer`` (UTF-8 bytes are ids 0..255, pad 256, bos 257, eos 258); no files.
- a component name: that component's tokenizer, loaded with ``AutoTokenizer.from_pretrained`` from its
  local directory or Hub id (and revision); a component built with ``init:`` has none (returns None).
- ``hf:<id>[@revision]`` or a local path (relative to the spec): ``AutoTokenizer`` too.

Before transformers reads them, the tokenizer files are checked as ``hybridc validate`` checks them
(``check_tokenizer_files``, through ``hybridc.spec.tokenizer_identity``): what validate refuses is refused
here with the same reason, never handed to the tokenizers library (which panics on some of it). A
``tokenizer.json`` named directly is loaded as that file. Remote code is never run
(``trust_remote_code=False``). Text is encoded without special tokens; the data sources add the
end-of-sequence token themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import RunError, first_line
from ..spec.model import BYTES_TOKENIZER, BYTES_VOCAB_SIZE
from ..spec.tokenizer_identity import (BYTE_SPECIAL_TOKENS, SENTENCEPIECE_HINT, SENTENCEPIECE_NEEDED,
                                       byte_to_unicode, sentencepiece_available)

if TYPE_CHECKING:
    from ..spec.frontend import ResolvedSpec


@runtime_checkable
class Tokenizer(Protocol):
    """What the data sources need from a tokenizer."""

    name: str

    @property
    def vocab_size(self) -> int: ...

    @property
    def eos_id(self) -> int | None: ...

    @property
    def pad_id(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes as tokens: ids 0..255 are bytes, 256 is pad, 257 bos, 258 eos (vocabulary 259)."""

    name: str = BYTES_TOKENIZER
    pad_id: int = 256
    bos_id: int = 257
    eos_id: int = 258
    vocab_size: int = BYTES_VOCAB_SIZE

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: list[int]) -> str:
        """Bytes back to text; special ids are dropped, invalid UTF-8 becomes U+FFFD."""
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class HFTokenizer:
    """A Hugging Face tokenizer seen through the ``Tokenizer`` protocol.

    ``eos_id`` is the tokenizer's eos token (None if it has none); ``pad_id`` is its pad token, else
    its eos token, else 0 (padding is always masked out, so only its range matters).
    """

    name: str
    tokenizer: Any = field(repr=False, compare=False)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)  # includes added tokens, unlike tokenizer.vocab_size

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    @property
    def pad_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if candidate is not None:
                return int(candidate)
        return 0

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        # verbose=False: long documents are cut into blocks later, so the "longer than the model's
        # maximum length" warning does not apply.
        out = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [list(ids) for ids in out["input_ids"]]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


def load_tokenizer(rs: "ResolvedSpec") -> Tokenizer | None:
    """The spec's tokenizer (see the module docstring); None for a component built with ``init:``.

    Raises ``RunError`` (with a hint) when a tokenizer cannot be loaded.
    """
    from ..spec.resolve import resolve_path

    tok = rs.spec.tokenizer
    if tok == BYTES_TOKENIZER:
        return ByteTokenizer()
    if tok in rs.spec.component_names:
        source = rs.spec.component(tok).source
        if source.kind == "init":
            return None
        rc = rs.component(tok)
        location = rc.location or source.ref
        return load_hf_tokenizer(location, rc.revision, name=tok,
                                 what=f"the tokenizer of component '{tok}' ({source})")
    if tok.startswith("hf:"):
        ref, _, revision = tok[3:].partition("@")
        return load_hf_tokenizer(ref, revision or None, name=tok, what=f"tokenizer '{tok}'")
    path = resolve_path(rs.base_dir, tok)
    return load_hf_tokenizer(str(path), None, name=tok, what=f"tokenizer '{tok}' ({path})")


def load_hf_tokenizer(location: str, revision: str | None, *, name: str, what: str | None = None) -> HFTokenizer:
    """``AutoTokenizer.from_pretrained(location, revision=revision)`` wrapped as a ``HFTokenizer``; a
    ``tokenizer.json`` file (not a directory) is read as a ``PreTrainedTokenizerFast`` of that file.

    The files are first checked as ``hybridc validate`` checks them (``check_tokenizer_files``), so what
    validate refuses is refused here for the same reason, before the tokenizers library sees it."""
    from pathlib import Path

    from ..components import hub

    what = what or location
    identity = check_tokenizer_files(location, revision, what)
    cache_only = hub.local_only(location)  # a Hub id while the Hub does not answer: fail at once, no retries
    try:
        if Path(location).is_file():
            from transformers import PreTrainedTokenizerFast

            hf = PreTrainedTokenizerFast(tokenizer_file=str(location))
        else:
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(location, revision=revision, trust_remote_code=False,
                                               **({"local_files_only": True} if cache_only else {}))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # missing files, network, bad json, a panic of the tokenizers library (not an Exception)
        down = hub.unreachable() if cache_only else None
        if down is not None:
            raise RunError(f"cannot load {what}: {down}", hint=hub.hint("the tokenizer")) from err
        if identity is not None and identity.kind == "sentencepiece" and not sentencepiece_available():
            raise RunError(f"cannot load {what}: {SENTENCEPIECE_NEEDED}", hint=SENTENCEPIECE_HINT) from err
        raise RunError(
            f"cannot load {what}: {type(err).__name__}: {first_line(err)}",
            hint="the directory (or Hub snapshot) needs tokenizer files (save them with "
                 "tokenizer.save_pretrained(dir)); offline, download the tokenizer once and point "
                 "'tokenizer' at its local directory, or use tokenizer: bytes",
        ) from err
    if len(hf) <= len(set(hf.all_special_ids)):
        # transformers 5 builds an empty tokenizer from a bare config.json instead of failing
        raise RunError(f"{what} has no vocabulary (no tokenizer files were found)",
                       hint="save the tokenizer next to the model with tokenizer.save_pretrained(dir), "
                            "point 'tokenizer' at a tokenizer directory or hf:<id>, or use tokenizer: bytes")
    return HFTokenizer(name=name, tokenizer=hf)


def check_tokenizer_files(location: str, revision: str | None = None, what: str | None = None):
    """The identity of the tokenizer files at ``location`` (a directory, a tokenizer.json, or a Hub id),
    read the way ``hybridc validate`` reads them; ``RunError`` giving the reason when validate would refuse
    them. None when there are no files to check (transformers then says what is missing)."""
    from pathlib import Path

    from ..spec.tokenizer_identity import (TokenizerFileError, identity_of_directory, identity_of_file,
                                           identity_on_hub)

    path = Path(location)
    try:
        if path.is_dir():
            return identity_of_directory(path)
        if path.exists():
            return identity_of_file(path)
        return identity_on_hub(str(location), revision)
    except TokenizerFileError as err:
        raise RunError(f"cannot load {what or location}: {err.message}", hint=err.hint) from None
    except OSError as err:
        raise RunError(f"cannot load {what or location}: {err.strerror or err}",
                       hint="check the permissions of the tokenizer files") from None


# ---- tokenizers inside model directories ---------------------------------------------------------

def byte_tokenizer_as_hf():
    """``tokenizer: bytes`` as a transformers ``PreTrainedTokenizerFast`` with the same ids (byte b is id
    b; pad 256, bos 257, eos 258), so ``AutoTokenizer.from_pretrained`` of a saved hybrid gives it back."""
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: b for b, char in byte_to_unicode().items()}
    rust = RustTokenizer(models.BPE(vocab=vocab, merges=[]))
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    rust.decoder = decoders.ByteLevel()
    rust.add_special_tokens(list(BYTE_SPECIAL_TOKENS))  # ids 256, 257, 258, in this order
    return PreTrainedTokenizerFast(tokenizer_object=rust, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   model_max_length=1_000_000_000, split_special_tokens=True)


def set_generation_ids(generation_config, tokenizer: Tokenizer) -> None:
    """The pad, eos (and, when the tokenizer has one, bos) ids of ``tokenizer`` in a transformers
    ``GenerationConfig``, so a saved model generates with its own tokenizer's ids."""
    generation_config.pad_token_id = tokenizer.pad_id
    generation_config.eos_token_id = tokenizer.eos_id
    bos = getattr(tokenizer, "bos_id", None)
    if bos is not None:
        generation_config.bos_token_id = bos


def save_tokenizer(tokenizer: Tokenizer, directory) -> None:
    """Write ``tokenizer``'s files into a model directory (``AutoTokenizer.from_pretrained`` reads them)."""
    hf = byte_tokenizer_as_hf() if isinstance(tokenizer, ByteTokenizer) else tokenizer.tokenizer
    hf.save_pretrained(str(directory))


def saved_tokenizer(tokenizer_field: str, directory) -> Tokenizer | None:
    """The tokenizer saved in a model directory (or Hub repository) by ``save_tokenizer``; ``bytes``
    needs no files. None when the directory holds no tokenizer files."""
    from pathlib import Path

    from ..spec.checks import TOKENIZER_FILES

    if tokenizer_field == BYTES_TOKENIZER:
        return ByteTokenizer()
    path = Path(directory)
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None
    return load_hf_tokenizer(str(directory), None, name=tokenizer_field, what=f"the tokenizer saved in {directory}")
