"""Tokenising, chunking, padding and pooling (tasks.text) and the few-shot head (tasks.fewshot), on the
real MiniLM tokenizer where a tokenizer is needed, and on the real encoder for padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from assets_text import minilm

from lanai.errors import BadInput
from lanai.tasks.fewshot import Head, build_head, read_examples
from lanai.tasks.text import Encoder, collate, mean_pool, normalise, pool_chunks
from lanai.types import ModelInfo, TensorSpec

pytest.importorskip("tokenizers")

IDS = ("input_ids", "attention_mask", "token_type_ids")
INFO = ModelInfo(
    "m", "1", "embed", "onnx", "onnx_onnxv1", tuple(TensorSpec(n, "INT64", (-1, -1)) for n in IDS),
    (TensorSpec("last_hidden_state", "FP32", (-1, -1, 384)),), "cpu", 8,
)  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer() -> Path:
    found = minilm()
    if found is None:
        pytest.skip("could not fetch all-MiniLM-L6-v2")
    return found.tokenizer


def test_a_short_text_is_one_window_with_its_special_tokens(tokenizer: Path) -> None:
    encoder = Encoder.of(INFO, tokenizer, {}, 1000)
    assert (encoder.window, encoder.overlap) == (128, 16)  # from tokenizer.json's truncation
    rows = encoder.rows("Hello world")
    assert rows.ids == [[101, 7592, 2088, 102]]  # [CLS] hello world [SEP]


def test_a_long_text_is_cut_into_overlapping_windows(tokenizer: Path) -> None:
    encoder = Encoder.of(INFO, tokenizer, {"window": 16, "overlap": 4}, 1000)
    words = " ".join(f"w{i}" for i in range(40))
    plain = encoder.tokenizer.encode(words, add_special_tokens=False).ids
    rows = encoder.rows(words)
    assert all(len(row) <= 16 and row[0] == 101 and row[-1] == 102 for row in rows.ids)
    inner = [row[1:-1] for row in rows.ids]
    for before, after in zip(inner, inner[1:]):
        assert before[-4:] == after[:4]  # each window starts with the last 4 tokens of the one before
    rebuilt = inner[0] + [t for row in inner[1:] for t in row[4:]]
    assert rebuilt == plain  # every token read, none lost
    with pytest.raises(BadInput, match="at most 20"):
        Encoder.of(INFO, tokenizer, {}, 20).rows(words)
    with pytest.raises(BadInput, match="empty"):
        encoder.rows(" \n ")


def test_collate_pads_every_row_to_the_batch_longest() -> None:
    one = {"input_ids": np.array([[101, 5, 102]]), "attention_mask": np.ones((1, 3), np.int64)}
    two = {"input_ids": np.array([[101, 5, 6, 7, 102], [101, 8, 102, 0, 0]]),
           "attention_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])}  # fmt: skip
    joined = collate([one, two], pad_id=9)
    assert joined["input_ids"].tolist() == [[101, 5, 102, 9, 9], [101, 5, 6, 7, 102], [101, 8, 102, 0, 0]]
    assert joined["attention_mask"].sum(axis=1).tolist() == [3, 5, 3]


def test_mean_pool_ignores_padding_and_chunks_are_weighted_by_tokens() -> None:
    states = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    pooled = mean_pool(states, mask)
    assert pooled.tolist() == [[1.0, 2.0], [8.0, 9.0]]
    assert pool_chunks(pooled, np.array([2, 3])).tolist() == pytest.approx([5.2, 6.2])  # (2·[1, 2] + 3·[8, 9]) / 5
    assert np.linalg.norm(normalise(pooled), axis=1) == pytest.approx([1.0, 1.0])


def test_padding_does_not_change_the_real_encoder_result(tokenizer: Path) -> None:
    import onnxruntime as ort

    model = minilm()
    assert model is not None
    session = ort.InferenceSession(str(model.model), providers=["CPUExecutionProvider"])
    encoder = Encoder.of(INFO, tokenizer, {}, 1000)
    short, long = (encoder.prepare(encoder.rows(t)) for t in ("a cat", "a much longer sentence about tax law"))
    alone = mean_pool(session.run(None, short)[0], short["attention_mask"])
    batch = collate([short, long])
    padded = mean_pool(session.run(None, batch)[0], batch["attention_mask"])
    assert padded[0] == pytest.approx(alone[0], abs=1e-4)


def test_few_shot_head_is_the_nearest_normalised_centroid() -> None:
    vectors = normalise(np.array([[1, 0.1, 0], [1, -0.1, 0], [0, 1, 0.1], [0, 1, -0.1]], np.float32))
    head = build_head(vectors, ["a", "a", "b", "b"])
    assert head.labels == ("a", "b") and head.examples == (2, 2)
    probs, similarity = head.probabilities(normalise(np.array([[0.9, 0.2, 0.0]], np.float32)))
    assert probs[0].argmax() == 0 and probs[0].sum() == pytest.approx(1.0)
    assert similarity[0, 0] > similarity[0, 1]
    again = Head.from_json(head.to_json())
    assert again.labels == head.labels and np.allclose(again.centroids, head.centroids, atol=1e-6)


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        (b"text,label\nhello,a\nworld,a\n", "fewer than two classes"),
        (b"hello,a\nno label here\n", "row 2"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_examples_are_refused(csv: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        read_examples(csv)


def test_examples_with_and_without_header() -> None:
    rows = read_examples(b'text,label\n"Dear John, hello",letter\nInvoice 4,invoice\n')
    assert rows == [("Dear John, hello", "letter"), ("Invoice 4", "invoice")]
