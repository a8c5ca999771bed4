"""Under mTLS a client certificate stands in for a key: the role it names is what its holder may do, on
HTTP and gRPC alike, and a revoked certificate is refused on both at once. Real certificates from the
store's CA, real sockets, no admin-by-loopback (every client here is on loopback)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceStub
from lanai.security.certs import ClientBundle, TlsFiles, init_authority, issue_client
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Store:
    store = make_store(tmp_path_factory.mktemp("cert-identity"), model_files)
    init_authority(TlsFiles.of(store.root), names=["localhost"], addresses=["127.0.0.1"])
    return store


@pytest.fixture(scope="module")
def server(store: Store) -> Iterator[ServerThread]:
    settings = Settings(home=store.root, intra_op_threads=1, mtls=True, admin_loopback=False).with_store_tls()
    server = ServerThread(DataPlane(store, settings), settings)
    with server:
        yield server


def _https(server: ServerThread, path: str, bundle: ClientBundle, files: TlsFiles) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(str(bundle.cert), str(bundle.key))
    return httpx.get(server.url.replace("http://", "https://") + path, verify=context, timeout=30)


def _grpc_stub(
    server: ServerThread, bundle: ClientBundle, files: TlsFiles
) -> tuple[grpc.Channel, GRPCInferenceServiceStub]:
    credentials = grpc.ssl_channel_credentials(
        files.ca_cert.read_bytes(), bundle.key.read_bytes(), bundle.cert.read_bytes()
    )
    channel = grpc.secure_channel(server.grpc_address, credentials)
    return channel, GRPCInferenceServiceStub(channel)


def _grpc_code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code()  # type: ignore[attr-defined, no-any-return]


def test_an_admin_certificate_may_do_admin_actions_without_a_key(server: ServerThread, store: Store) -> None:
    files = TlsFiles.of(store.root)
    bundle = issue_client(files, "ops-laptop", "admin")
    metrics = _https(server, "/metrics", bundle, files)
    assert metrics.status_code == 200, metrics.text
    assert "lanai_requests_total" in metrics.text or "lanai_" in metrics.text
    health = _https(server, "/health", bundle, files).json()
    assert "models" in health  # the full health, for an admin
    channel, stub = _grpc_stub(server, bundle, files)
    with channel:
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="tiny"), timeout=60)
        assert stub.ModelReady(pb.ModelReadyRequest(name="tiny"), timeout=10).ready


def test_an_infer_certificate_may_infer_but_not_administer(server: ServerThread, store: Store) -> None:
    files = TlsFiles.of(store.root)
    bundle = issue_client(files, "front-desk", "infer")
    assert _https(server, "/v2/models/tiny", bundle, files).json()["name"] == "tiny"
    refused = _https(server, "/metrics", bundle, files)
    assert refused.status_code == 403
    assert "front-desk" in refused.json()["error"] and "admin" in refused.json()["error"]
    channel, stub = _grpc_stub(server, bundle, files)
    with channel:
        assert stub.ModelMetadata(pb.ModelMetadataRequest(name="tiny"), timeout=10).name == "tiny"
        load = pb.RepositoryModelLoadRequest(model_name="tiny")
        assert _grpc_code(lambda: stub.RepositoryModelLoad(load, timeout=10)) is grpc.StatusCode.PERMISSION_DENIED


def test_a_revoked_certificate_is_refused_on_both_doors_without_a_restart(server: ServerThread, store: Store) -> None:
    files = TlsFiles.of(store.root)
    bundle = issue_client(files, "lost-tablet", "infer")
    assert _https(server, "/v2/models/tiny", bundle, files).status_code == 200
    KeyRing(store.root).revoke_certificate(bundle.fingerprint, "lost-tablet")
    time.sleep(0.6)  # the server looks at the key file at most every half second
    refused = _https(server, "/v2/models/tiny", bundle, files)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]
    channel, stub = _grpc_stub(server, bundle, files)
    with channel:
        call = lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="tiny"), timeout=10)  # noqa: E731
        assert _grpc_code(call) is grpc.StatusCode.UNAUTHENTICATED
    other = issue_client(files, "other-tablet", "infer")  # other certificates are not affected
    assert _https(server, "/v2/models/tiny", other, files).status_code == 200


def test_pinned_client_certificates_are_the_only_ones_accepted(store: Store) -> None:
    files = TlsFiles.of(store.root)
    pinned = issue_client(files, "pinned-pc", "infer")
    other = issue_client(files, "other-pc", "infer")  # the same CA, not pinned
    settings = Settings(
        home=store.root, intra_op_threads=1, mtls=True, admin_loopback=False,
        tls_client_pins=(pinned.fingerprint.replace(":", "").lower(),),  # any spelling of the fingerprint
    ).with_store_tls()  # fmt: skip
    server = ServerThread(DataPlane(store, settings), settings)
    with server:
        assert _https(server, "/v2/models/tiny", pinned, files).status_code == 200
        refused = _https(server, "/v2/models/tiny", other, files)
        assert refused.status_code == 401 and "other-pc" in refused.json()["error"]
        request = pb.ModelMetadataRequest(name="tiny")
        channel, stub = _grpc_stub(server, pinned, files)
        with channel:
            assert stub.ModelMetadata(request, timeout=10).name == "tiny"
        channel, stub = _grpc_stub(server, other, files)
        with channel:
            assert _grpc_code(lambda: stub.ModelMetadata(request, timeout=10)) is grpc.StatusCode.UNAUTHENTICATED


def test_a_self_signed_client_certificate_can_be_pinned(store: Store, tmp_path: Path) -> None:
    """A certificate no CA signed (one a device made itself): listed as an authority of its own beside
    the store's CA, and pinned, it is let in, with the role it names."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = TlsFiles.of(store.root)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "admin"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "own-laptop")])  # fmt: skip
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    bundle = ClientBundle(tmp_path / "own.pem", tmp_path / "own.key", tmp_path / "none.p12", "",
                          cert.fingerprint(hashes.SHA256()).hex(":").upper())  # fmt: skip
    bundle.cert.write_bytes(cert_pem)
    bundle.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    authorities = tmp_path / "clients.pem"
    authorities.write_bytes(files.ca_cert.read_bytes() + cert_pem)
    settings = Settings(
        home=store.root, intra_op_threads=1, mtls=True, admin_loopback=False, tls_client_ca=authorities,
        tls_client_pins=(bundle.fingerprint,),
    ).with_store_tls()  # fmt: skip
    server = ServerThread(DataPlane(store, settings), settings)
    with server:
        assert _https(server, "/metrics", bundle, files).status_code == 200  # admin, as its OU says
        stranger = issue_client(files, "not-pinned", "admin")
        assert _https(server, "/metrics", stranger, files).status_code == 401
