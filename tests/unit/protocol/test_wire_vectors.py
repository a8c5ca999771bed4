"""Vectors in wire values: a float32 array stays an array through ``to_dict``, the HTTP door writes it with
float32's shortest digits (exactly the same float32 values when read back), and a client reads it as a
tuple of floats."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lanai.http.json_response import JSONResponse, dumps
from lanai.protocol.wire import Wire, doc, schema
from lanai.tasks.base import wire_vector


@dataclass(frozen=True)
class Answer(Wire):
    name: str = doc("A name.")
    vector: Sequence[float] = doc("A vector.")
    scores: tuple[float, ...] = doc("Plain floats.")


def unit_vector(n: int = 384) -> np.ndarray:
    v = np.random.default_rng(7).standard_normal(n).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_float32_vector_goes_out_with_the_shortest_digits_and_reads_back_exactly() -> None:
    vector = unit_vector()
    body = dumps(Answer("m", wire_vector(vector), (0.5, 0.25)).to_dict())
    read = json.loads(body)
    assert np.array_equal(np.array(read["vector"], dtype=np.float32), vector)  # not one bit lost
    assert read["scores"] == [0.5, 0.25] and read["name"] == "m"
    longest = max(len(x.lstrip("-").replace("0.", "", 1).lstrip("0")) for x in body.decode().split("[")[1].split(","))
    assert longest <= 10  # 9 significant digits at most, where Python's float repr of them takes up to 17
    assert len(body) < len(json.dumps(vector.tolist()))


def test_to_dict_keeps_the_array_and_from_dict_gives_a_tuple() -> None:
    vector = wire_vector(np.arange(3, dtype=np.float64))  # made float32 and contiguous
    assert isinstance(vector, np.ndarray) and vector.dtype == np.float32 and vector.flags.c_contiguous
    out = Answer("m", vector, (1.0,)).to_dict()
    assert out["vector"] is vector and out["scores"] == [1.0]
    back = Answer.from_dict(json.loads(dumps(out)))
    assert back.vector == (0.0, 1.0, 2.0) and isinstance(back.vector, tuple)
    assert schema(Answer)["properties"]["vector"]["type"] == "array"


def test_a_strided_view_is_written_right() -> None:
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert json.loads(dumps({"v": wire_vector(rows[:, 1])})) == {"v": [1.0, 5.0, 9.0]}


def test_the_door_answer_writes_what_json_cannot_and_nothing_json_would_reject() -> None:
    answer = JSONResponse({"nan": float("nan"), "name": "café", 3: "int key", "v": np.float32([0.1])})
    assert json.loads(answer.body) == {"nan": None, "name": "café", "3": "int key", "v": [0.1]}
    assert answer.headers["content-type"] == "application/json"
