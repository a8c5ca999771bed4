"""API keys and TLS, on servers of their own."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.store import Store

from support import ServerThread, make_store


@pytest.fixture
def store(tmp_path: Path, model_files: dict[str, Path]) -> Store:
    return make_store(tmp_path / "store", model_files)


def test_api_key_guards_everything_but_health(store: Store, photos: dict[str, bytes]) -> None:
    settings = Settings(home=store.root, api_key="s3cret")
    with ServerThread(DataPlane(store, settings), settings) as url, httpx.Client(base_url=url) as client:
        classify = "/v1/models/efficientnet-lite0/classify"
        r = client.post(classify, files={"file": ("c.jpg", photos["chelsea"])})
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/v2/models/tiny", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics").status_code == 401
        ok = client.post(
            classify, files={"file": ("c.jpg", photos["chelsea"])}, headers={"Authorization": "Bearer s3cret"}
        )
        assert ok.status_code == 200
        assert client.get("/v2/models/tiny", headers={"X-API-Key": "s3cret"}).status_code == 200
        for path in ("/health", "/v2/health/live", "/v2/health/ready"):
            assert client.get(path).status_code == 200
        metrics = client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).text
        assert 'status="401"' in metrics


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls(store: Store, tmp_path: Path, photos: dict[str, bytes]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    settings = Settings(home=store.root, tls_certfile=cert, tls_keyfile=key)
    with ServerThread(DataPlane(store, settings), settings) as url:
        https = url.replace("http://", "https://")
        context = ssl.create_default_context(cafile=str(cert))
        r = httpx.post(https + "/predict", files={"file": ("c.jpg", photos["chelsea"])}, verify=context)
        assert r.status_code == 200 and "cat" in r.json()["label"]
        with pytest.raises(httpx.TransportError):
            httpx.get(https + "/health", verify=True)  # not signed by a known authority
