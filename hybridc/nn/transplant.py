"""A pretrained component under the hybrid's tokenizer (``vocab: new`` / ``transplant``).

The component is rebuilt from its resolved config (which has the hybrid's vocabulary size; ``new`` ties
the head to the embedding) with every pretrained weight but the embedding and LM head. Then:

- ``new``: the embedding is drawn from N(0, 0.02) (the seed is the spec's, derived per component), as
  the method's reference code does for every component; the head is tied to it.
- ``transplant``: row t of the embedding (and of an untied head) is the component's own row for the same
  token string; a token its vocabulary lacks gets its own tokenizer's special token of the same role
  if any (a token holding several roles takes the first of eos, bos, unk, pad), else the mean of the rows
  of the pieces the token splits into, else (no pieces, or an id the hybrid's tokenizer never produces)
  the mean of all its rows. A token of a byte-level tokenizer (GPT-2's byte alphabet, or a SentencePiece
  ``<0xHH>`` byte) stands for bytes, not text: a fragment of a multi-byte character has no text of its
  own, so its bytes are split by the component's byte-level model (its own byte alphabet through its BPE
  merges, or its ``<0xHH>`` tokens), never decoded to U+FFFD and re-tokenized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ..components.adapters import build_model
from ..components.registry import get_family
from ..spec.resolve import ResolvedComponent
from ..spec.tokenizer_identity import byte_to_unicode

NEW_EMBEDDING_STD = 0.02


@dataclass(frozen=True)
class TransplantPlan:
    """Where each of the hybrid's token ids takes its row from: a list of the component's own ids (their
    mean), or an empty list (the mean of all rows). Counts say how each id was placed."""

    sources: tuple[tuple[int, ...], ...]  # one entry per hybrid id
    matched: int  # same token string
    special: int  # same special-token role
    pieces: int  # mean of the pieces of its text
    rest: int  # mean of all rows

    def summary(self) -> str:
        return (f"{self.matched:,} tokens matched by string, {self.special} by special-token role, "
                f"{self.pieces:,} from the mean of their pieces, {self.rest:,} ids from the mean of all rows")


def _hf(tokenizer):
    """The transformers tokenizer behind one of hybridc's (bytes: its equivalent fast tokenizer)."""
    from ..data.tokenizer import ByteTokenizer, byte_tokenizer_as_hf

    return byte_tokenizer_as_hf() if isinstance(tokenizer, ByteTokenizer) else tokenizer.tokenizer


def transplant_plan(own, hybrid, size: int) -> TransplantPlan:
    """The plan for ``size`` hybrid ids from the component's tokenizer ``own`` and the hybrid's ``hybrid``
    (hybridc ``Tokenizer`` objects)."""
    own_hf, hybrid_hf = _hf(own), _hf(hybrid)
    own_vocab = own_hf.get_vocab()
    by_id = {i: token for token, i in hybrid_hf.get_vocab().items()}
    roles: dict[str, int] = {}
    for role in ROLES:  # in priority order: a token that is bos, eos and unk at once takes the eos row
        theirs, ours = getattr(hybrid_hf, role, None), getattr(own_hf, role, None)
        if theirs is not None and ours is not None and ours in own_vocab:
            roles.setdefault(str(theirs), own_vocab[ours])
    hybrid_bytes, own_bytes = _is_byte_level(hybrid_hf), _is_byte_level(own_hf)
    sources, counts = [], {"matched": 0, "special": 0, "pieces": 0, "rest": 0}
    for t in range(size):
        token = by_id.get(t)
        if token is None:
            sources.append(())
            counts["rest"] += 1
        elif token in own_vocab:
            sources.append((own_vocab[token],))
            counts["matched"] += 1
        elif token in roles:
            sources.append((roles[token],))
            counts["special"] += 1
        else:
            data = token_bytes(token, hybrid_bytes)
            if data is not None:
                pieces = pieces_of_bytes(own_hf, own_vocab, data, own_bytes)
            else:
                pieces = _pieces_of_text(own_hf, hybrid_hf.convert_tokens_to_string([token]))
            sources.append(pieces)
            counts["pieces" if pieces else "rest"] += 1
    return TransplantPlan(tuple(sources), **counts)


ROLES = ("eos_token", "bos_token", "unk_token", "pad_token")  # the priority of special-token roles
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte fallback
_CHAR_OF_BYTE = byte_to_unicode()  # GPT-2's byte alphabet: byte b <-> one printable character
_BYTE_OF_CHAR = {c: b for b, c in _CHAR_OF_BYTE.items()}


def _is_byte_level(hf) -> bool:
    """Whether the tokenizer's tokens are spelled in GPT-2's byte alphabet (its decoder is ByteLevel)."""
    backend = getattr(hf, "backend_tokenizer", None)
    return backend is not None and type(backend.decoder).__name__ == "ByteLevel"


def token_bytes(token: str, byte_level: bool) -> bytes | None:
    """The bytes a token stands for when it is a byte-level token (``<0xHH>``, or spelled in GPT-2's byte
    alphabet by a byte-level tokenizer); None for a token of text."""
    if (m := _BYTE_TOKEN.fullmatch(token)) is not None:
        return bytes([int(m.group(1), 16)])
    if byte_level and token and all(c in _BYTE_OF_CHAR for c in token):
        return bytes(_BYTE_OF_CHAR[c] for c in token)
    return None


def _pieces_of_text(own_hf, text: str) -> tuple[int, ...]:
    return tuple(own_hf(text, add_special_tokens=False)["input_ids"]) if text else ()


def pieces_of_bytes(own_hf, own_vocab: dict[str, int], data: bytes, own_byte_level: bool) -> tuple[int, ...]:
    """The component's ids for ``data``: a byte-level component splits the bytes, spelled in its alphabet,
    with its own BPE model (its merges; no normalizer or pre-tokenizer, which work on text); otherwise each
    run of valid UTF-8 is tokenized as text and each other byte is the component's ``<0xHH>`` token when it
    has one (else it is left out: no row stands for it)."""
    if own_byte_level:
        return tuple(t.id for t in own_hf.backend_tokenizer.model.tokenize("".join(_CHAR_OF_BYTE[b] for b in data)))
    pieces: list[int] = []
    run: list[str] = []
    for char in data.decode("utf-8", errors="surrogateescape"):  # (a byte outside UTF-8: U+DC80..U+DCFF)
        if "\udc80" <= char <= "\udcff":
            pieces += _pieces_of_text(own_hf, "".join(run))
            run = []
            byte_id = own_vocab.get(f"<0x{ord(char) - 0xDC00:02X}>")
            pieces += [byte_id] if byte_id is not None else []
        else:
            run.append(char)
    return tuple(pieces + list(_pieces_of_text(own_hf, "".join(run))))


def transplanted_rows(weight: torch.Tensor, plan: TransplantPlan) -> torch.Tensor:
    """(V_hybrid, d) rows from the component's (V_own, d) ``weight`` by ``plan``."""
    mean = weight.mean(0)
    rows = []
    for ids in plan.sources:
        inside = [i for i in ids if i < weight.shape[0]]  # a tokenizer may have ids past the embedding
        rows.append(weight[inside].mean(0) if inside else mean)
    return torch.stack(rows)


def under_hybrid_vocab(pretrained: nn.Module, rc: ResolvedComponent, *, seed: int,
                       plan: TransplantPlan | None = None) -> nn.Module:
    """``pretrained`` (the component's own model) rebuilt for the hybrid's vocabulary (see module doc)."""
    model = build_model(get_family(rc.family), rc.config, seed=seed)
    own_embedding = pretrained.get_input_embeddings().weight  # (V_own, d)
    own_head = pretrained.get_output_embeddings()
    vocab_tensors = {id(own_embedding), *(id(p) for p in own_head.parameters())}
    kept = {k: v for k, v in pretrained.state_dict(keep_vars=True).items() if id(v) not in vocab_tensors}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    vocab_keys = {k for k, v in model.state_dict(keep_vars=True).items()
                  if v is embedding.weight or any(v is p for p in head.parameters())}
    if unexpected or set(missing) - vocab_keys:
        raise RuntimeError(f"component '{rc.name}': rebuilding it for the hybrid's vocabulary lost weights "
                           f"(missing {sorted(set(missing) - vocab_keys)[:3]}, unexpected {unexpected[:3]})")
    with torch.no_grad():
        if rc.vocab == "new":
            g = torch.Generator().manual_seed(seed)
            embedding.weight.copy_(torch.randn(embedding.weight.shape, generator=g) * NEW_EMBEDDING_STD)
        else:
            assert plan is not None, "transplant needs a plan"
            embedding.weight.copy_(transplanted_rows(own_embedding.detach(), plan))
            if head.weight is not embedding.weight:
                head.weight.copy_(transplanted_rows(own_head.weight.detach(), plan))
                if getattr(head, "bias", None) is not None and getattr(own_head, "bias", None) is not None:
                    head.bias.copy_(transplanted_rows(own_head.bias.detach()[:, None], plan)[:, 0])
    return model.train(pretrained.training)
