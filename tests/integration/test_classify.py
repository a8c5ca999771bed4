"""The classify task and the tutorial aliases, over real HTTP with real photos and the bundled model."""

from __future__ import annotations

import httpx

from support import RunningServer

CAT_WORDS = ("cat", "tabby", "tiger", "lynx", "persian", "siamese", "egyptian")
COFFEE_WORDS = ("espresso", "cup", "coffee")


def top_label(answer: dict) -> str:
    return answer["predictions"][0]["label"].lower()


def test_chelsea_is_a_cat(server: RunningServer, photos: dict[str, bytes]) -> None:
    r = server.client.post(
        "/v1/models/efficientnet-lite0/classify", files={"file": ("chelsea.jpg", photos["chelsea"], "image/jpeg")}
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert any(word in top_label(answer) for word in CAT_WORDS), answer["predictions"]
    assert answer["model"] == "efficientnet-lite0" and answer["version"] == "1"
    assert len(answer["predictions"]) == 5
    scores = [p["score"] for p in answer["predictions"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert answer["label"] == answer["predictions"][0]["label"]
    assert set(answer["timing"]) >= {"preprocess_ms", "queue_ms", "compute_ms", "total_ms"}


def test_coffee_is_espresso_or_a_cup_raw_body(server: RunningServer, photos: dict[str, bytes]) -> None:
    r = server.client.post(
        "/v1/models/efficientnet-lite0/classify?top_k=3",
        content=photos["coffee"],
        headers={"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 200, r.text
    assert any(word in top_label(r.json()) for word in COFFEE_WORDS), r.json()["predictions"]
    assert len(r.json()["predictions"]) == 3


def test_png_and_versioned_path(server: RunningServer, photos: dict[str, bytes]) -> None:
    r = server.client.post(
        "/v1/models/efficientnet-lite0/versions/1/classify", files={"file": ("c.png", photos["chelsea.png"])}
    )
    assert r.status_code == 200, r.text
    assert any(word in top_label(r.json()) for word in CAT_WORDS)


def test_tutorial_aliases_use_the_default_model(server: RunningServer, photos: dict[str, bytes]) -> None:
    for path in ("/predict", "/v1/infer"):
        r = server.client.post(path, files={"file": ("chelsea.jpg", photos["chelsea"], "image/jpeg")})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "efficientnet-lite0"
        assert any(word in r.json()["label"].lower() for word in CAT_WORDS)


def test_tiny_model_matches_numpy(server: RunningServer) -> None:
    """The whole path (decode, preprocess, batcher, backend, top-k) against the same maths in numpy."""
    import numpy as np

    from support import encode, tiny_logits

    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    r = server.client.post("/v1/models/tiny/classify?top_k=5", files={"file": ("x.png", encode(pixels, "PNG"))})
    assert r.status_code == 200, r.text
    logits = tiny_logits((pixels.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = {p["index"]: p["score"] for p in r.json()["predictions"]}
    np.testing.assert_allclose([got[i] for i in range(5)], expected, rtol=1e-4, atol=1e-6)
    assert r.json()["predictions"][0]["label"] == ["apple", "banana", "cherry", "date", "elder"][int(np.argmax(logits))]


def test_fixed_batch_model_serves_concurrent_requests(server: RunningServer, photos: dict[str, bytes]) -> None:
    import asyncio

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(*(
                client.post("/v1/models/tiny-fixed/classify", files={"file": ("a.jpg", photos["astronaut"])})
                for _ in range(12)
            ))  # fmt: skip

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 12
    assert len({r.json()["label"] for r in responses}) == 1
    assert all(r.json()["timing"]["batch_size"] == 1 for r in responses)


def test_tutorial_clients_that_mislabel_the_image_still_get_an_answer(
    server: RunningServer, photos: dict[str, bytes]
) -> None:
    cat = photos["chelsea"]
    url = "/v1/models/efficientnet-lite0/classify"
    for headers in ({"Content-Type": "multipart/form-data"}, {"Content-Type": "application/json"}, {}):
        r = server.client.post(url, content=cat, headers=headers)  # the raw JPEG, labelled wrong or not at all
        assert r.status_code == 200 and "cat" in r.json()["label"].lower(), (headers, r.text)
    extra = server.client.post(url, files={"photo": ("c.jpg", cat), "notes": ("n.txt", b"hello")}, data={"who": "ann"})
    assert extra.status_code == 200 and "cat" in extra.json()["label"].lower(), extra.text
