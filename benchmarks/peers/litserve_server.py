"""The same classifier on LitServe with its dynamic batching: ``POST /predict`` with the photo as an
uploaded file (form field ``file``), decoded and preprocessed per request (imagenet.py, as the FastAPI
peer; benchmarks/peers.py sets PEER_DECODE=lanai and PEER_THREADS=granted for it), then batches of up to
``PEER_MAX_BATCH`` (default 8, lanai's default) gathered for up to ``PEER_BATCH_TIMEOUT`` s (default
0.002, lanai's max_queue_delay_us) through one onnxruntime session; LitServe's defaults otherwise (one
inference worker, one API server process). Run by benchmarks/peers.py in its own venv:

    PEER_MODEL=model.onnx PEER_LABELS=labels.txt python litserve_server.py 8000
"""

from __future__ import annotations

import os
import sys

import litserve as ls
import numpy as np
import onnxruntime as ort
from imagenet import load_labels, preprocess, session_options, top5


class Classifier(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.session = ort.InferenceSession(os.environ["PEER_MODEL"], session_options())
        self.input_name = self.session.get_inputs()[0].name
        self.labels = load_labels()

    def decode_request(self, request):  # type: ignore[no-untyped-def]
        return preprocess(request["file"].file.read())[0]

    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(None, {self.input_name: x})[0])

    def encode_response(self, output: np.ndarray) -> dict[str, list[dict[str, object]]]:
        return top5(output, self.labels)


if __name__ == "__main__":
    api = Classifier(
        max_batch_size=int(os.environ.get("PEER_MAX_BATCH", "8")),
        batch_timeout=float(os.environ.get("PEER_BATCH_TIMEOUT", "0.002")),
    )
    server = ls.LitServer(api, accelerator="cpu")
    server.run(host="127.0.0.1", port=int(sys.argv[1]), generate_client_file=False, log_level="warning")
