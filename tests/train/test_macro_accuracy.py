"""Macro accuracy is MAD's: torchmetrics' ``MulticlassAccuracy(average="macro", ignore_index=-100)``, the
mean recall over the classes that are a target or are predicted at scored positions (a class only ever
predicted scores 0), accumulated over the split; accuracy stays micro. Hand-computed cases on a fake
model with fixed logits, and a property test against a plain-Python confusion matrix."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridc.data import Split
from hybridc.models.hybrid import IGNORE_INDEX
from hybridc.train.loop import MacroAccuracy, evaluate

CLASSES = 32
IGN = IGNORE_INDEX
CPU = torch.device("cpu")


class Echo(torch.nn.Module):
    """Logits one-hot on the input token: position t predicts ``input_ids[t]`` (after causal-lm's shift,
    ``labels[t]`` is predicted by ``input_ids[t - 1]``)."""

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=torch.nn.functional.one_hot(input_ids, CLASSES).float())


def run(preds: list[list[int]], labels: list[list[int]], task: str = "tag", batch_size: int = 64, **kw) -> dict:
    split = Split(torch.tensor(preds), torch.tensor(labels))
    return evaluate(Echo(), split, batch_size, CPU, task=task, **kw)


def reference(preds: list[int], targets: list[int]) -> float:
    """Per-class recall tp / (tp + fn), averaged over the classes with tp + fp + fn > 0."""
    classes = set(preds) | set(targets)
    if not classes:
        return float("nan")
    recalls = []
    for c in classes:
        tp = sum(1 for p, t in zip(preds, targets) if t == c and p == c)
        support = sum(1 for t in targets if t == c)  # tp + fn
        recalls.append(tp / support if support else 0.0)
    return sum(recalls) / len(recalls)


def test_all_right_is_one():
    out = run([[3, 5, 7, 3]], [[3, 5, 7, 3]])
    assert out["accuracy"] == out["macro_accuracy"] == 1.0 and out["targets"] == 4


def test_errors_spread_over_non_target_classes_are_classes_scoring_zero():
    """The issue's shape: two target classes, 7 of 10 right, the 3 errors on 3 classes never targeted.
    Micro 0.7; the old macro (target classes only) (4/5 + 3/5) / 2 = 0.7; MAD's over {0, 1, 5, 6, 7}:
    (4/5 + 3/5 + 0 + 0 + 0) / 5 = 0.28."""
    targets = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    preds = [0, 0, 0, 0, 5, 1, 1, 1, 6, 7]
    out = run([preds], [targets])
    assert out["accuracy"] == pytest.approx(0.7)
    assert out["macro_accuracy"] == pytest.approx(0.28)


def test_a_class_only_predicted_counts_as_zero_and_false_positives_do_not_lower_recall():
    # class 3 is predicted, never a target: (1/2 + 0) / 2
    assert run([[0, 3]], [[0, 0]])["macro_accuracy"] == pytest.approx(0.25)
    # class 1 is also predicted where the target is 0 (a false positive): its recall stays 1; class 0's is 0
    assert run([[1, 1, 1]], [[0, 1, 1]])["macro_accuracy"] == pytest.approx(0.5)
    # nothing right: every class involved scores 0
    assert run([[1, 2, 0]], [[0, 1, 2]])["macro_accuracy"] == 0.0


def test_ignored_positions_are_neither_targets_nor_predictions():
    """Class 9 is predicted only where the label is ignored: it does not count (else 1/2)."""
    out = run([[9, 4, 9, 4]], [[IGN, 4, IGN, 4]])
    assert out["macro_accuracy"] == 1.0 and out["accuracy"] == 1.0 and out["targets"] == 2
    # the ignored target's class does not count either: class 2 appears only under ignored labels
    assert run([[2, 4, 6]], [[IGN, 4, 5]])["macro_accuracy"] == pytest.approx((1 + 0 + 0) / 3)  # {4, 5, 6}


def test_causal_lm_scores_the_shifted_positions():
    """After the shift, labels[t] is predicted by input_ids[t - 1]; labels[0] is never scored.
    Pairs (pred, target): (1, 1), (2, 2), (8, 3): classes {1, 2, 3, 8} -> (1 + 1 + 0 + 0) / 4."""
    ids = [[1, 2, 8, 9]]
    labels = [[7, 1, 2, 3]]
    out = run(ids, labels, task="causal-lm")
    assert out["targets"] == 3
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["macro_accuracy"] == pytest.approx(0.5)
    assert "perplexity" in out
    # unshifted (a tag task) the same tensors mean pairs (1, 7), (2, 1), (8, 2), (9, 3): nothing right
    assert run(ids, labels, task="tag")["macro_accuracy"] == 0.0


def test_the_split_is_accumulated_whatever_the_batch_size():
    """Batch 0 alone scores 1 (class 0 right), batch 1 alone (1/2 + 0) / 2 over {1, 2}; the split has
    classes {0, 1, 2}: (1 + 1/2 + 0) / 3 in every batch size, not a mean of batch values."""
    ids = [[0, 0], [1, 2]]
    labels = [[0, 0], [1, 1]]
    whole = (1 + 0.5 + 0) / 3
    for batch_size in (1, 2, 3):
        assert run(ids, labels, batch_size=batch_size)["macro_accuracy"] == pytest.approx(whole)
    assert run(ids, labels, batch_size=1, max_batches=1)["macro_accuracy"] == 1.0
    assert run(ids[1:], labels[1:])["macro_accuracy"] == pytest.approx(0.25)
    # and the accumulator: updates in pieces equal one update on the concatenation
    pieces, joined = MacroAccuracy(), MacroAccuracy()
    pieces.update(torch.tensor([0, 0]), torch.tensor([0, 0]))
    pieces.update(torch.tensor([1, 2]), torch.tensor([1, 1]))
    joined.update(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 1]))
    assert pieces.compute() == joined.compute() == pytest.approx(whole)


def test_nothing_scored_is_nan():
    out = run([[1, 2]], [[IGN, IGN]])
    assert out["targets"] == 0 and out["macro_accuracy"] != out["macro_accuracy"]
    assert MacroAccuracy().compute() != MacroAccuracy().compute()


def test_negative_class_ids_are_refused():
    with pytest.raises(ValueError, match="ignore_index"):
        MacroAccuracy().update(torch.tensor([0, 1]), torch.tensor([0, IGNORE_INDEX]))


rows = st.integers(1, 5).flatmap(lambda t: st.lists(
    st.lists(st.tuples(st.integers(0, 7), st.one_of(st.integers(0, 7), st.just(IGNORE_INDEX))),
             min_size=t, max_size=t), min_size=1, max_size=6))


@settings(max_examples=200, deadline=None)
@given(rows=rows, batch_size=st.integers(1, 7), causal=st.booleans())
def test_matches_a_confusion_matrix_reference(rows, batch_size, causal):
    """Random predictions and targets (some ignored), any batch size, with or without the causal shift:
    micro accuracy and MAD's macro accuracy as the plain reference computes them on the whole split."""
    ids = [[p for p, _ in row] for row in rows]
    labels = [[t for _, t in row] for row in rows]
    pairs = [(row[t - causal][0], row[t][1]) for row in rows for t in range(causal, len(row))]
    scored = [(p, t) for p, t in pairs if t != IGNORE_INDEX]
    out = run(ids, labels, task="causal-lm" if causal else "tag", batch_size=batch_size)
    assert out["targets"] == len(scored)
    if not scored:
        assert out["macro_accuracy"] != out["macro_accuracy"]
        return
    preds, targets = [p for p, _ in scored], [t for _, t in scored]
    assert out["accuracy"] == pytest.approx(sum(p == t for p, t in scored) / len(scored))
    assert out["macro_accuracy"] == pytest.approx(reference(preds, targets), abs=1e-12)
