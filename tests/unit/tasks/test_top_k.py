from __future__ import annotations

import numpy as np
import pytest

from lanai.errors import BadInput
from lanai.tasks.classify import to_probabilities, top_k


def test_top_k_orders_and_labels() -> None:
    logits = np.array([[0.1, 3.0, -1.0, 2.0]], dtype=np.float32)
    best = top_k(logits, ["a", "b", "c", "d"], 3)
    assert [p.label for p in best] == ["b", "d", "a"]
    assert [p.index for p in best] == [1, 3, 0]
    assert best[0].score == pytest.approx(np.exp(3) / np.exp(logits).sum(), rel=1e-5)


def test_probabilities_pass_through_and_k_is_capped() -> None:
    probs = np.array([0.2, 0.5, 0.3], dtype=np.float32)
    np.testing.assert_allclose(to_probabilities(probs), probs)
    assert len(top_k(probs, [], 10)) == 3
    assert top_k(probs, [], 1)[0].label == "1"  # no labels: the index


@pytest.mark.parametrize("k", [0, -1, 1001])
def test_bad_k(k: int) -> None:
    with pytest.raises(BadInput):
        top_k(np.zeros(3), [], k)


def test_ranking_a_batch_at_once_gives_each_image_what_top_k_gives_it() -> None:
    from lanai.tasks.classify import rank, ranked

    scores = np.random.default_rng(3).standard_normal((6, 40)).astype(np.float32)
    labels = [f"class {i}" for i in range(40)]
    probs, order = rank(scores)
    for row in range(6):
        for k in (1, 5, 40):
            assert ranked(probs[row], order[row], labels, k) == top_k(scores[row], labels, k)
    assert order.shape == (6, 40) and np.allclose(probs.sum(axis=1), 1.0)


def test_close_logits_are_ranked_on_the_logits_not_on_rounded_probabilities() -> None:
    """1000 logits a few float32 steps apart (a model with random or tiny outputs): in float32 their
    softmax is one value, 0.001, for every class; the ranking must still follow the logits."""
    from lanai.tasks.classify import rank, ranked

    rng = np.random.default_rng(11)
    logits = (rng.permutation(1000) * 1e-10).astype(np.float32)  # distinct, 1e-7 apart at most
    shifted = np.exp(logits - logits.max())
    assert len(np.unique(shifted / shifted.sum())) <= 3  # what ranking on float32 probabilities saw
    expected = list(np.argsort(-logits.astype(np.float64), kind="stable")[:5])
    best = top_k(logits, [], 5)
    assert [p.index for p in best] == expected
    assert all(a.score >= b.score for a, b in zip(best, best[1:]))
    probs, order = rank(np.stack([logits, logits[::-1]]))
    assert [p.index for p in ranked(probs[1], order[1], [], 5)] == [999 - i for i in expected]
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-12)


def test_unsigned_outputs_and_ties_rank_right() -> None:
    quantised = np.array([10, 200, 50, 200], dtype=np.uint8)  # a quantised model's scores
    assert [p.index for p in top_k(quantised, [], 4)] == [1, 3, 2, 0]  # equal scores: the lower index first
    assert [p.index for p in top_k(np.zeros(6, np.float32), [], 3)] == [0, 1, 2]
