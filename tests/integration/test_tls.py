"""TLS and mTLS with the box's own CA (lanai certs), over real sockets, on HTTP and gRPC: a client with
the CA's certificate connects; under mTLS, one from another CA and an expired one are refused in the
handshake, and no certificate is refused too (on HTTP after the handshake, which pairing needs)."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from lanai.bench import BenchConfig, multipart_request, run
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceStub
from lanai.security.certs import TlsFiles, init_authority, issue_client
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, encode, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Store:
    store = make_store(tmp_path_factory.mktemp("tls-store"), model_files)
    init_authority(TlsFiles.of(store.root), names=["localhost"], addresses=["127.0.0.1"])
    return store


def start(store: Store, **options: object) -> ServerThread:
    settings = Settings(home=store.root, intra_op_threads=1, **options).with_store_tls()  # type: ignore[arg-type]
    return ServerThread(DataPlane(store, settings), settings)


@pytest.fixture(scope="module")
def mtls(store: Store) -> Iterator[ServerThread]:
    server = start(store, mtls=True)
    with server:
        yield server


def https(server: ServerThread) -> str:
    return server.url.replace("http://", "https://")


def client_context(files: TlsFiles, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def test_tls_serves_https_and_grpc_with_the_store_certificate(store: Store) -> None:
    files = TlsFiles.of(store.root)
    with start(store, tls=True) as url:
        server_url = url.replace("http://", "https://")
        health = httpx.get(server_url + "/v2/health/ready", verify=client_context(files))
        assert health.status_code == 200
        with pytest.raises(httpx.TransportError):  # not signed by an authority the system knows
            httpx.get(server_url + "/v2/health/ready", verify=True)


def test_mtls_admits_a_client_certificate_of_its_ca(mtls: ServerThread, store: Store) -> None:
    files = TlsFiles.of(store.root)
    bundle = issue_client(files, "scanner")
    context = client_context(files, bundle.cert, bundle.key)
    assert httpx.get(https(mtls) + "/v2/models/tiny", verify=context).json()["name"] == "tiny"
    credentials = grpc.ssl_channel_credentials(files.ca_cert.read_bytes(), bundle.key.read_bytes(),
                                               bundle.cert.read_bytes())  # fmt: skip
    with grpc.secure_channel(mtls.grpc_address, credentials) as channel:
        reply = GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name="tiny"), timeout=10)
    assert reply.name == "tiny"
    # the PKCS#12 bundle for Windows opens with the password printed once, and holds the same certificate
    key, cert, chain = pkcs12.load_key_and_certificates(bundle.p12.read_bytes(), bundle.p12_password.encode())
    assert cert is not None and cert.public_bytes(serialization.Encoding.PEM) == bundle.cert.read_bytes()
    assert [c.subject for c in chain] == [x509.load_pem_x509_certificate(files.ca_cert.read_bytes()).subject]


def _refused_http(server: ServerThread, context: ssl.SSLContext) -> None:
    with pytest.raises((httpx.TransportError, ssl.SSLError)):
        httpx.get(https(server) + "/v2/models/tiny", verify=context).raise_for_status()


def _refused_grpc(server: ServerThread, ca: bytes, key: bytes | None, cert: bytes | None) -> None:
    credentials = grpc.ssl_channel_credentials(ca, key, cert)
    with grpc.secure_channel(server.grpc_address, credentials) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_mtls_refuses_no_certificate(mtls: ServerThread, store: Store) -> None:
    """gRPC refuses it in the handshake. HTTP lets it finish the handshake so that a new device can
    pair (lanai pair), and refuses every other request, health and admin ones included, with a 401."""
    files = TlsFiles.of(store.root)
    for path in ("/v2/models/tiny", "/health", "/v2/health/live", "/metrics"):
        refused = httpx.get(https(mtls) + path, verify=client_context(files))
        assert refused.status_code == 401, path
        assert "client certificate" in refused.json()["error"]
    tensor = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}
    infer = httpx.post(https(mtls) + "/v2/models/tiny/infer", json={"inputs": [tensor]}, verify=client_context(files))
    assert infer.status_code == 401
    _refused_grpc(mtls, files.ca_cert.read_bytes(), None, None)


def test_mtls_refuses_a_certificate_from_another_ca(mtls: ServerThread, store: Store, tmp_path: Path) -> None:
    files, other = TlsFiles.of(store.root), TlsFiles.of(tmp_path / "other")
    init_authority(other, names=["localhost"], addresses=["127.0.0.1"])
    stranger = issue_client(other, "stranger")
    _refused_http(mtls, client_context(files, stranger.cert, stranger.key))
    _refused_grpc(mtls, files.ca_cert.read_bytes(), stranger.key.read_bytes(), stranger.cert.read_bytes())


def test_mtls_refuses_an_expired_certificate(mtls: ServerThread, store: Store, tmp_path: Path) -> None:
    files = TlsFiles.of(store.root)
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(past - datetime.timedelta(days=365)).not_valid_after(past)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )  # fmt: skip
    cert_path, key_path = tmp_path / "old.pem", tmp_path / "old.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    _refused_http(mtls, client_context(files, cert_path, key_path))
    _refused_grpc(mtls, files.ca_cert.read_bytes(), key_path.read_bytes(), cert_path.read_bytes())


def test_tls_without_certificates_says_how_to_make_them(tmp_path: Path) -> None:
    from lanai.errors import ConfigError

    with pytest.raises(ConfigError, match="lanai certs init"):
        Settings(home=tmp_path, tls=True).with_store_tls()


def test_lanai_bench_loads_a_server_over_mtls_with_a_key(mtls: ServerThread, store: Store) -> None:
    files = TlsFiles.of(store.root)
    bundle = issue_client(files, "bench")
    key = KeyRing(store.root).create("bench", "infer")
    image = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    request = multipart_request("/v1/models/tiny/classify", image, "x.png", headers={"Authorization": f"Bearer {key}"})
    config = BenchConfig(https(mtls), request, 2, requests=20, warmup=0, cafile=str(files.ca_cert),
                         certfile=str(bundle.cert), keyfile=str(bundle.key))  # fmt: skip
    result = run(config)
    assert result.ok and result.to_dict()["requests"] == 20, result.format_text()
