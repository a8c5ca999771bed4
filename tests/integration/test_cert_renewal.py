"""Renewing the server certificate without downtime, over real sockets, on HTTP and gRPC: after
``lanai certs renew`` a new connection gets the new certificate while an open keep-alive connection, an
open gRPC channel and requests in flight carry on; a half-written or corrupt pair is refused and the old
certificate stays; a certificate close to expiry is renewed when the server starts."""

from __future__ import annotations

import datetime
import hashlib
import logging
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509

from lanai.cli import main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceStub
from lanai.security.certs import TlsFiles, fingerprint, init_authority, renew_server
from lanai.store import Store
from lanai.store._fs import replace_atomic

from support import ServerThread, make_store

WAIT_S = 15.0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Store:
    store = make_store(tmp_path_factory.mktemp("renewal-store"), model_files)
    init_authority(TlsFiles.of(store.root), names=["localhost"], addresses=["127.0.0.1"])
    return store


@pytest.fixture(scope="module")
def server(store: Store) -> Iterator[ServerThread]:
    settings = Settings(home=store.root, intra_op_threads=1, tls=True).with_store_tls()
    started = ServerThread(DataPlane(store, settings), settings)
    with started:
        yield started


def client_context(files: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(files.ca_cert))


def served(port: int, files: TlsFiles, *, alpn: str = "http/1.1") -> str:
    """The SHA-256 fingerprint of the certificate a new TLS connection to ``port`` is given."""
    context = client_context(files)
    context.set_alpn_protocols([alpn])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return fingerprint_of(tls)


def fingerprint_of(tls: ssl.SSLSocket) -> str:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest().hex(":").upper()


def on_disk(files: TlsFiles) -> str:
    return fingerprint(x509.load_pem_x509_certificate(files.server_cert.read_bytes()))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ports(server: ServerThread) -> tuple[int, int]:
    assert server.service.grpc_port is not None
    return server.service.http_port, server.service.grpc_port


def keep_alive_get(tls: ssl.SSLSocket, path: str) -> bytes:
    """One HTTP/1.1 request on an open connection; returns the response head (the body is small)."""
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, "the server closed the keep-alive connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += tls.recv(65536)
    return head


class Traffic:
    """Requests in a loop from a thread, half on one keep-alive client and half each on a new connection,
    counting what fails: there must be nothing while the certificate changes."""

    def __init__(self, server: ServerThread, files: TlsFiles) -> None:
        self.url = server.url.replace("http://", "https://") + "/v2/health/ready"
        self.context = client_context(files)
        self.done = 0
        self.failures: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(verify=self.context, timeout=10) as kept:
            while not self._stop.is_set():
                try:
                    assert kept.get(self.url).status_code == 200
                    assert httpx.get(self.url, verify=self.context, timeout=10).status_code == 200
                    self.done += 2
                except Exception as exc:
                    self.failures.append(exc)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_renewal_reaches_new_connections_and_spares_open_ones(server: ServerThread, store: Store) -> None:
    files = TlsFiles.of(store.root)
    http_port, grpc_port = ports(server)
    old = served(http_port, files)
    assert served(grpc_port, files, alpn="h2") == old
    context = client_context(files)
    credentials = grpc.ssl_channel_credentials(files.ca_cert.read_bytes())
    with socket.create_connection(("127.0.0.1", http_port), timeout=5) as raw, \
         context.wrap_socket(raw, server_hostname="localhost") as kept, \
         grpc.secure_channel(f"localhost:{grpc_port}", credentials) as channel, \
         Traffic(server, files) as traffic:  # fmt: skip
        assert keep_alive_get(kept, "/v2/health/live").startswith(b"HTTP/1.1 200")
        stub = GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        assert stub.ServerReady(pb.ServerReadyRequest()).ready
        new = renew_server(files)
        assert new != old
        wait_until(lambda: served(http_port, files) == new, "HTTP to serve the renewed certificate")
        wait_until(lambda: served(grpc_port, files, alpn="h2") == new, "gRPC to serve the renewed certificate")
        # the connections opened before the renewal carry on, with the certificate they were given
        assert keep_alive_get(kept, "/v2/health/live").startswith(b"HTTP/1.1 200")
        assert fingerprint_of(kept) == old
        assert stub.ServerReady(pb.ServerReadyRequest()).ready
        wait_until(lambda: traffic.done >= 20, "requests across the switch")
    assert traffic.failures == []
    with grpc.secure_channel(f"localhost:{grpc_port}", credentials) as fresh:
        assert GRPCInferenceServiceStub(fresh).ServerReady(pb.ServerReadyRequest()).ready  # type: ignore[no-untyped-call]
    # the authority stayed: a client that trusted it before trusts the new certificate
    assert httpx.get(server.url.replace("http://", "https://") + "/v2/health/ready", verify=context).status_code == 200


def test_the_cli_renews_and_the_server_follows(
    server: ServerThread, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    files = TlsFiles.of(store.root)
    http_port, _ = ports(server)
    ca_before = files.ca_cert.read_bytes()
    assert main(["certs", "--home", str(store.root), "renew"]) == 0
    out = capsys.readouterr().out
    new = out.split("SHA-256 fingerprint ")[1].split()[0]
    assert new == on_disk(files)
    wait_until(lambda: served(http_port, files) == new, "the server to follow the CLI's renewal")
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]  # the names of the certificate it replaced
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert files.ca_cert.read_bytes() == ca_before


def test_a_half_written_or_corrupt_pair_is_refused(
    server: ServerThread, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lanai.security.reload")
    files = TlsFiles.of(store.root)
    http_port, grpc_port = ports(server)
    old = served(http_port, files)
    elsewhere = TlsFiles(tmp_path / "tls")  # the same CA, a renewal not yet copied into place
    elsewhere.root.mkdir()
    for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
        shutil.copy(files.root / name, elsewhere.root / name)
    new = renew_server(elsewhere)

    def refusals() -> int:
        return sum("cannot be used" in r.getMessage() for r in caplog.records)

    # the new certificate beside the old key: half of a renewal
    replace_atomic(files.server_cert, elsewhere.server_cert.read_bytes(), files.root)
    wait_until(lambda: refusals() >= 1, "the mismatched pair to be refused")
    assert "does not belong to the certificate" in caplog.text
    assert served(http_port, files) == old and served(grpc_port, files, alpn="h2") == old
    # a key file that is not a key
    replace_atomic(files.server_key, b"-----BEGIN PRIVATE KEY-----\ngarbage\n", files.root)
    wait_until(lambda: refusals() >= 2, "the corrupt key to be refused")
    assert served(http_port, files) == old and served(grpc_port, files, alpn="h2") == old
    # the renewal completes: now it is served
    replace_atomic(files.server_key, elsewhere.server_key.read_bytes(), files.root)
    wait_until(lambda: served(http_port, files) == new, "the completed pair to be served")
    assert served(grpc_port, files, alpn="h2") == new


def test_a_certificate_close_to_expiry_is_renewed_at_start(
    tmp_path: Path, model_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lanai.security.reload")
    store = make_store(tmp_path / "store", model_files)
    files = TlsFiles.of(store.root)
    init_authority(files, names=["localhost"], addresses=["127.0.0.1"])
    short = renew_server(files, days=3)  # inside the 30 days before expiry
    settings = Settings(home=store.root, intra_op_threads=1, tls=True).with_store_tls()
    started = ServerThread(DataPlane(store, settings), settings)
    with started:
        http_port, grpc_port = ports(started)
        renewed = served(http_port, files)
        assert renewed != short and renewed == on_disk(files)
        assert served(grpc_port, files, alpn="h2") == renewed
    expires = x509.load_pem_x509_certificate(files.server_cert.read_bytes()).not_valid_after_utc
    assert expires - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=300)
    assert "renewed it from the store's CA" in caplog.text
