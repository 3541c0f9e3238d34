"""Mixture weights of a block: search logits on the simplex, fixed weights and their zero branches."""

from __future__ import annotations

import torch

from hybridc.nn.mixture import Mix


def test_search_mixture_is_softmax_and_never_skips() -> None:
    mix = Mix(3, learned=True)
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.0, 1.0, -30.0]))
    assert torch.allclose(mix(), torch.softmax(mix.logits, -1))
    assert mix.constant_zeros() == [False, False, False]


def test_fixed_zeros_follow_the_weights_loaded() -> None:
    mix = Mix(3, learned=False, alphas=[0.5, 0.5, 0.0])
    assert mix.constant_zeros() == [False, False, True]
    other = Mix(3, learned=False, alphas=[0.0, 1.0, 0.0])
    mix.load_state_dict(other.state_dict())
    assert torch.equal(mix(), torch.tensor([0.0, 1.0, 0.0]))
    assert mix.constant_zeros() == [True, False, True]
    flags = mix.constant_zeros()
    flags[1] = True  # callers get their own list
    assert mix.constant_zeros() == [True, False, True]
