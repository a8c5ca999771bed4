"""A plain FastAPI image classifier, the way a tutorial writes one: ``POST /predict`` with the photo as an
uploaded file, Pillow and numpy to decode and preprocess it (imagenet.py), one onnxruntime session with
its default options, softmax and the top 5 as JSON; one uvicorn worker. Run by benchmarks/peers.py in its
own venv:

    PEER_MODEL=model.onnx PEER_LABELS=labels.txt uvicorn fastapi_server:app --port 8000
"""

from __future__ import annotations

import os

import onnxruntime as ort
from fastapi import FastAPI, UploadFile
from imagenet import load_labels, preprocess, session_options, top5

session = ort.InferenceSession(os.environ["PEER_MODEL"], session_options())  # None: the defaults
input_name = session.get_inputs()[0].name
labels = load_labels()

app = FastAPI()


@app.post("/predict")
async def predict(file: UploadFile) -> dict[str, list[dict[str, object]]]:
    data = await file.read()
    logits = session.run(None, {input_name: preprocess(data)})[0]
    return top5(logits[0], labels)
