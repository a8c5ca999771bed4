"""GET /v1/status over a real server sampling every 0.2 s: the requests a model answered, its latency
percentiles, histories of equal lengths, the warnings logged, admins only, and the body its OpenAPI
schema declares."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.http.openapi import openapi_document
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, make_store

N = 12


@pytest.fixture
def store(tmp_path: Path, model_files: dict[str, Path]) -> Store:
    return make_store(tmp_path / "store", model_files)


@pytest.fixture
def lan(store: Store) -> Iterator[httpx.Client]:
    # admin_loopback off: the test client on 127.0.0.1 stands for a laptop on the LAN
    settings = Settings(home=store.root, admin_loopback=False, intra_op_threads=1, grpc=False, status_interval_s=0.2)
    with ServerThread(DataPlane(store, settings), settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_status_shows_the_requests_latencies_history_and_errors_to_admins_only(
    lan: httpx.Client, store: Store, photos: dict[str, bytes]
) -> None:
    ring = KeyRing(store.root)
    admin = {"Authorization": f"Bearer {ring.create('ops', 'admin')}"}
    infer = {"Authorization": f"Bearer {ring.create('desk', 'infer')}"}
    first = lan.get("/v1/status", headers=admin).json()
    assert first["history"]["t"], "a sample is taken at start"

    for _ in range(N):
        answer = lan.post("/v1/models/tiny/classify", files={"file": ("c.jpg", photos["chelsea"])})
        assert answer.status_code == 200
    logging.getLogger("lanai.test_status_page").warning("the fan is\nloud")

    deadline = time.monotonic() + 10
    while True:  # until a sample (not only the interval not sampled yet) holds the requests
        status = lan.get("/v1/status", headers=admin)
        assert status.status_code == 200
        data: dict[str, Any] = status.json()
        tiny = next(m for m in data["models"] if m["name"] == "tiny")
        if sum(tiny["history"]["requests_per_s"]) > 0:
            break
        assert time.monotonic() < deadline, "no sample counted the requests"
        time.sleep(0.05)

    document = openapi_document()
    declared = document["paths"]["/v1/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    OAS31Validator({**declared, "components": document["components"]}).validate(data)
    assert data["status"] == "healthy" and data["reason"] is None and data["interval_s"] == 0.2
    assert data["uptime_s"] >= 0 and data["version"] and data["failed"] == []
    assert {"cpu_percent", "process_rss_mb", "temperature_c", "throttled"} <= set(data["device"])
    names = {m["name"] for m in data["models"]}
    assert {"tiny", "tiny-fixed", "efficientnet-lite0"} <= names

    assert tiny["requests_5m"] == N and tiny["failures_5m"] == 0
    assert tiny["requests_per_s"] > 0 and tiny["queue_depth"] == 0 and tiny["task"] == "classify"
    assert 0 < tiny["p50_ms"] <= tiny["p95_ms"] < 10_000
    history = tiny["history"]
    assert len(history["t"]) == len(history["requests_per_s"]) == len(history["p50_ms"]) == len(history["p95_ms"]) > 1
    assert history["t"] == sorted(history["t"])
    device = data["history"]
    lengths = {len(device[key]) for key in ("t", "cpu_percent", "memory_used_mb", "rss_mb", "temperature_c",
                                            "throttled")}  # fmt: skip
    assert len(lengths) == 1 and lengths.pop() >= len(history["t"])
    assert all(rss > 0 for rss in device["rss_mb"])
    other = next(m for m in data["models"] if m["name"] == "tiny-fixed")
    assert other["requests_5m"] == 0 and other["p50_ms"] is None

    warning = data["errors"][-1]
    assert warning["level"] == "WARNING" and warning["logger"] == "lanai.test_status_page"
    assert warning["message"] == "the fan is loud" and abs(warning["time"] - time.time()) < 60

    refused = lan.get("/v1/status")
    assert refused.status_code == 401 and "needs an admin key" in refused.json()["error"]
    assert lan.get("/v1/status", headers=infer).status_code == 403
