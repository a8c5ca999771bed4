"""Every client mistake gets a 4xx with a JSON error that says what to fix, and the server serves on."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest
from PIL import Image

import lanai.errors

from support import RunningServer

CLASSIFY = "/v1/models/efficientnet-lite0/classify"


def bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buffer, "PNG")  # 900 megapixels in a few kB
    return buffer.getvalue()


def expect_error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["error"]
    assert isinstance(message, str) and "Traceback" not in message
    if r.status_code != 405 and "no such endpoint" not in message:
        assert r.json()["kind"] in lanai.errors.__all__  # the class, for clients that tell errors apart
    for word in words:
        assert word.lower() in message.lower(), message


def still_serving(server: RunningServer, photos: dict[str, bytes]) -> None:
    r = server.client.post(CLASSIFY, files={"file": ("c.jpg", photos["chelsea"])})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"this is a text file, not a photo", ["not an image"]),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x13" * 500, ["image"]),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, ["image"]),
        (b'{"inputs": []}', ["not an image"]),
    ],
)
def test_non_images_and_corrupt_images(
    server: RunningServer, photos: dict[str, bytes], content: bytes, words: list[str]
) -> None:
    expect_error(server.client.post(CLASSIFY, files={"file": ("x.jpg", content)}), 400, *words)
    expect_error(server.client.post(CLASSIFY, content=content, headers={"Content-Type": "image/jpeg"}), 400, *words)
    still_serving(server, photos)


def test_truncated_jpeg(server: RunningServer, photos: dict[str, bytes]) -> None:
    cut = photos["chelsea"][: len(photos["chelsea"]) // 3]
    expect_error(server.client.post(CLASSIFY, files={"file": ("c.jpg", cut)}), 400, "truncated")
    still_serving(server, photos)


def test_decompression_bomb(server: RunningServer, photos: dict[str, bytes]) -> None:
    expect_error(server.client.post(CLASSIFY, files={"file": ("b.png", bomb())}), 413, "megapixel")
    still_serving(server, photos)


def test_oversized_body(server: RunningServer, photos: dict[str, bytes]) -> None:
    big = b"\0" * (3 * 2**20)  # the test server's limit is 2 MiB
    expect_error(server.client.post(CLASSIFY, content=big, headers={"Content-Type": "image/jpeg"}), 413, "larger than")
    expect_error(server.client.post("/v2/models/tiny/infer", content=big), 413, "max_body_bytes")

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(48):
            yield b"\0" * 65536

    expect_error(server.client.post(CLASSIFY, content=chunks(), headers={"Content-Type": "image/jpeg"}), 413)
    still_serving(server, photos)


def test_empty_and_form_mistakes(server: RunningServer, photos: dict[str, bytes]) -> None:
    c = server.client
    expect_error(c.post(CLASSIFY), 400, "no image")
    expect_error(c.post(CLASSIFY, files={"photo": ("a.jpg", b"x"), "other": ("b.jpg", b"y")}), 400, "'file'")
    expect_error(
        c.post(CLASSIFY, content=b"not a form", headers={"Content-Type": "multipart/form-data"}), 400, "boundary"
    )
    expect_error(c.post(CLASSIFY + "?top_k=abc", files={"file": ("c.jpg", photos["chelsea"])}), 400, "top_k")
    expect_error(c.post(CLASSIFY + "?top_k=0", files={"file": ("c.jpg", photos["chelsea"])}), 400, "top_k")
    still_serving(server, photos)


def test_unknown_models_versions_and_routes(server: RunningServer, photos: dict[str, bytes]) -> None:
    c = server.client
    expect_error(c.post("/v1/models/nope/classify", files={"file": ("c.jpg", photos["chelsea"])}), 404, "nope")
    expect_error(c.post("/v1/models/efficientnet-lite0/versions/7/classify", content=photos["chelsea"]), 404, "version")
    expect_error(c.get("/v2/models/nope"), 404, "loaded models")
    expect_error(c.get("/v2/models/tiny/versions/9/ready"), 404, "activate")
    expect_error(c.post("/v2/models/nope/infer", json={}), 404)
    expect_error(c.get("/no/such/path"), 404, "openapi")
    expect_error(c.get(CLASSIFY), 405)
    expect_error(c.post("/v1/models/tiny/classify", content="x" * 10, headers={"Content-Type": "image/png"}), 400)


def _infer(server: RunningServer, inputs: list[dict], **kwargs: object) -> httpx.Response:
    return server.client.post("/v2/models/tiny/infer", content=json.dumps({"inputs": inputs, **kwargs}))


GOOD = {"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": [0.5] * 192}


@pytest.mark.parametrize(
    ("inputs", "extra", "words"),
    [
        ([{**GOOD, "shape": [1, 3, 8, 9], "data": [0.5] * 216}], {}, ["shape", "[-1, 3, 8, 8]"]),
        ([{**GOOD, "datatype": "INT32", "data": [1] * 192}], {}, ["INT32", "FP32"]),
        ([{**GOOD, "data": [0.5] * 191}], {}, ["191", "192"]),
        ([{**GOOD, "name": "pixels"}], {}, ["no input named pixels", "input"]),
        ([GOOD, {**GOOD, "name": "extra"}], {}, ["extra"]),
        ([{**GOOD, "shape": [0, 3, 8, 8], "data": []}], {}, ["empty batch"]),
        ([GOOD], {"outputs": [{"name": "probs"}]}, ["no output named 'probs'"]),
        ([{**GOOD, "datatype": "FLOAT"}], {}, ["datatype"]),
    ],
)
def test_wrong_tensors(
    server: RunningServer, photos: dict[str, bytes], inputs: list[dict], extra: dict, words: list[str]
) -> None:
    expect_error(_infer(server, inputs, **extra), 400, *words)
    still_serving(server, photos)


def test_malformed_json_and_binary_headers(server: RunningServer, photos: dict[str, bytes]) -> None:
    c = server.client
    expect_error(c.post("/v2/models/tiny/infer", content=b'{"inputs": [}'), 400, "not valid JSON")
    expect_error(c.post("/v2/models/tiny/infer", content=b"\xff\xfe"), 400, "JSON")
    header = b'{"inputs":[{"name":"input","shape":[1,3,8,8],"datatype":"FP32","parameters":{"binary_data_size":768}}]}'
    cases = [
        ({"Inference-Header-Content-Length": "lots"}, header + b"\0" * 768, "not a number"),
        ({"Inference-Header-Content-Length": "100000"}, header + b"\0" * 768, "Inference-Header-Content-Length"),
        ({"Inference-Header-Content-Length": str(len(header))}, header + b"\0" * 700, "remain"),
        ({"Inference-Header-Content-Length": str(len(header))}, header + b"\0" * 800, "after the last"),
        ({"Inference-Header-Content-Length": "0"}, b"\0" * 10, "needs"),
    ]
    for headers, content, word in cases:
        expect_error(c.post("/v2/models/tiny/infer", content=content, headers=headers), 400, word)
    expect_error(c.post("/v2/repository/index", content=b"[1"), 400, "JSON")
    still_serving(server, photos)


def test_bad_and_good_requests_side_by_side(server: RunningServer, photos: dict[str, bytes]) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            good = [client.post(CLASSIFY, files={"file": ("c.jpg", photos["chelsea"])}) for _ in range(8)]
            bad = [client.post(CLASSIFY, files={"file": ("c.jpg", photos["chelsea"][:2000])}) for _ in range(8)]
            return await asyncio.gather(*(x for pair in zip(good, bad) for x in pair))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200, 400] * 8


def test_a_client_that_leaves_mid_body_is_counted_as_499_not_as_a_bad_request(server: RunningServer) -> None:
    import re
    import socket
    import time
    from urllib.parse import urlsplit

    url = urlsplit(server.url)
    metrics = server.client.get("/metrics").text
    pattern = r'lanai_requests_total\{endpoint="/v1/models/\{model\}/classify",model="tiny",status="499"\} (\S+)'

    def gone() -> float:
        found = re.search(pattern, server.client.get("/metrics").text)
        return float(found.group(1)) if found else 0.0

    before = gone() if metrics else 0.0
    with socket.create_connection((url.hostname, url.port)) as conn:
        conn.sendall(b"POST /v1/models/tiny/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     b"Content-Length: 100000\r\n\r\n" + b"\xff\xd8" * 50)  # fmt: skip
    deadline = time.monotonic() + 5
    while gone() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone() == before + 1
