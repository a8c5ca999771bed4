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
