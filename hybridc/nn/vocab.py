"""A pretrained component under the hybrid's tokenizer (``vocab: new`` / ``transplant``).

The component is rebuilt from its resolved config (which has the hybrid's vocabulary size; ``new`` ties
the head to the embedding) with every pretrained weight but the embedding and LM head. Then:

- ``new``: the embedding is drawn from N(0, 0.02) (the seed is the spec's, derived per component), as
  the method's reference code does for every component; the head is tied to it.
- ``transplant``: row t of the embedding (and of an untied head) is the component's own row for the same
  token string; a token its vocabulary lacks gets its own tokenizer's special token of the same role
  (eos, bos, unk, pad) if any, else the mean of the rows of the pieces its tokenizer splits the token's
  text into, else (no pieces, or an id the hybrid's tokenizer never produces) the mean of all its rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..components.adapters import build_model
from ..components.registry import get_family
from ..spec.resolve import ResolvedComponent

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
    roles = {}
    for role in ("eos_token", "bos_token", "unk_token", "pad_token"):
        theirs, ours = getattr(hybrid_hf, role, None), getattr(own_hf, role, None)
        if theirs is not None and ours is not None and ours in own_vocab:
            roles[str(theirs)] = own_vocab[ours]
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
            text = hybrid_hf.convert_tokens_to_string([token])
            pieces = tuple(own_hf(text, add_special_tokens=False)["input_ids"])
            sources.append(pieces)
            counts["pieces" if pieces else "rest"] += 1
    return TransplantPlan(tuple(sources), **counts)


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
