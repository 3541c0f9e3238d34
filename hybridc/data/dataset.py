"""``Split`` (one split of a dataset, CPU tensors) and ``DataBundle`` (train/valid/test of one source)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100  # label of positions that are not scored (the Hugging Face convention)


@dataclass(frozen=True)
class Split:
    """One split of a dataset; every tensor is on the CPU.

    - ``input_ids``: (N, T) long token ids.
    - ``labels``: (N, T) long, aligned with ``input_ids`` (the model shifts: logits at t-1 predict
      labels[t]), ``IGNORE_INDEX`` (-100) where nothing is scored (causal-lm, tag); or (N,) long class
      ids (classify).
    - ``attention_mask``: (N, T) long, 1 on real tokens and 0 on padding; None when nothing is padded.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        ids, labels, mask = self.input_ids, self.labels, self.attention_mask
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"input_ids must be (N, T) long, not {tuple(ids.shape)} {ids.dtype}")
        if labels.dtype != torch.long or labels.shape[0] != ids.shape[0] or labels.dim() not in (1, 2):
            raise ValueError(f"labels must be (N,) or (N, T) long, not {tuple(labels.shape)} {labels.dtype}")
        if labels.dim() == 2 and labels.shape != ids.shape:
            raise ValueError(f"labels {tuple(labels.shape)} do not match input_ids {tuple(ids.shape)}")
        if mask is not None and (mask.shape != ids.shape or mask.dtype != torch.long):
            raise ValueError(f"attention_mask must be {tuple(ids.shape)} long, not {tuple(mask.shape)} {mask.dtype}")

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        """T, the (padded) sequence length."""
        return int(self.input_ids.shape[1])

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``indices`` ((B,) long): {"input_ids": (B, T), "labels": (B, T) or (B,), ["attention_mask": (B, T)]}."""
        out = {"input_ids": self.input_ids[indices], "labels": self.labels[indices]}
        if self.attention_mask is not None:
            out["attention_mask"] = self.attention_mask[indices]
        return out

    def select(self, indices: torch.Tensor) -> "Split":
        """The split made of rows ``indices`` ((k,) long), in that order (copies, not views)."""
        mask = self.attention_mask[indices].clone() if self.attention_mask is not None else None
        return Split(self.input_ids[indices].clone(), self.labels[indices].clone(), mask)

    def max_token_id(self) -> int:
        """The largest token id in ``input_ids`` and in token-valued labels (-1 when empty)."""
        top = int(self.input_ids.max()) if self.input_ids.numel() else -1
        if self.labels.dim() == 2 and self.labels.numel():
            top = max(top, int(self.labels.max()))
        return top


@dataclass(frozen=True)
class DataBundle:
    """The three disjoint splits of one data source.

    ``max_token_id`` is the largest token id any split uses (it must be below the hybrid's
    vocabulary); ``description`` is one line for logs, e.g.
    ``text(data/corpus.txt, block=256): 812 train / 43 valid / 43 test sequences``.
    """

    train: Split
    valid: Split
    test: Split
    max_token_id: int
    description: str
    source: str = ""  # the data's identity (``build.data_identity``): with the seed, it fixes the search split

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def search_split(self, fraction: float, seed: int) -> tuple[Split, Split]:
        """(weights, search): the training split cut in two for an alternating search, a pure function of
        (seed, source, fraction). The alpha steps read ``search`` only, the weight steps the rest; valid and
        test are never touched. ``fraction`` 0 gives (train, train): the alpha steps then read the training
        stream (batches the weight steps do not take). Raises ValueError when a part would be empty."""
        from .sampling import generator, search_indices

        if fraction == 0:
            return self.train, self.train
        weights, search = search_indices(len(self.train), fraction, generator(seed, "search", self.source))
        return self.train.select(weights), self.train.select(search)
