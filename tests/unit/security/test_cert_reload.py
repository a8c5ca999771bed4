"""Renewing the server certificate from the store's CA, and the watcher that hands a renewed pair to the
doors only when the certificate and key belong together."""

from __future__ import annotations

import datetime
import logging
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from lanai.config import Settings
from lanai.errors import ConfigError
from lanai.security.certs import TlsFiles, fingerprint, init_authority, renew_if_due, renew_server
from lanai.security.reload import CertWatcher, load_pair_into, read_pair
from lanai.store._fs import replace_atomic


@pytest.fixture
def files(tmp_path: Path) -> TlsFiles:
    files = TlsFiles.of(tmp_path)
    init_authority(files, names=["box", "box.local"], addresses=["127.0.0.1", "192.168.1.20"])
    return files


def sans(files: TlsFiles) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [str(a) for a in ext.get_values_for_type(x509.IPAddress)]


def test_renewal_keeps_the_ca_and_the_names_unless_given_new_ones(files: TlsFiles) -> None:
    ca, old_key = files.ca_cert.read_bytes(), files.server_key.read_bytes()
    first = read_pair(files.server_cert, files.server_key).fingerprint
    renewed = renew_server(files)
    assert renewed != first and files.server_key.read_bytes() != old_key and files.ca_cert.read_bytes() == ca
    assert sans(files) == (["box", "box.local"], ["127.0.0.1", "192.168.1.20"])
    renew_server(files, names=["other"], addresses=["10.0.0.5"])
    assert sans(files) == (["other"], ["10.0.0.5"])


def test_renewal_needs_the_ca_and_sensible_arguments(tmp_path: Path, files: TlsFiles) -> None:
    with pytest.raises(ConfigError, match="no certificate authority") as err:
        renew_server(TlsFiles.of(tmp_path / "empty"))
    assert err.value.hint == "run: lanai certs init"
    with pytest.raises(ConfigError, match="--days"):
        renew_server(files, days=0)
    with pytest.raises(ConfigError, match="IPv4 or IPv6"):
        renew_server(files, addresses=["not-an-address"])


def test_renew_if_due_renews_only_within_thirty_days(files: TlsFiles) -> None:
    assert renew_if_due(files) is None  # a fresh certificate: 397 days
    renew_server(files, days=45)
    assert renew_if_due(files) is None
    short = renew_server(files, days=20)
    renewed = renew_if_due(files)
    assert renewed is not None and renewed != short
    assert read_pair(files.server_cert, files.server_key).not_after > _now() + datetime.timedelta(days=300)


def test_read_pair_refuses_a_mismatched_or_corrupt_pair(files: TlsFiles, tmp_path: Path) -> None:
    old_key = files.server_key.read_bytes()
    renew_server(files)
    replace_atomic(files.server_key, old_key, files.root)
    with pytest.raises(ConfigError, match="does not belong"):
        read_pair(files.server_cert, files.server_key)
    replace_atomic(files.server_cert, b"not a certificate", files.root)
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        read_pair(files.server_cert, files.server_key)
    with pytest.raises(ConfigError, match="cannot read"):
        read_pair(tmp_path / "missing.pem", files.server_key)


def test_the_watcher_hands_over_only_a_complete_pair_and_logs_a_refusal_once(
    files: TlsFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = CertWatcher(files.server_cert, files.server_key)
    watcher.prepare()
    assert watcher.current is not None
    assert watcher.poll() is None  # nothing changed
    staged = TlsFiles(tmp_path / "staged")
    staged.root.mkdir()
    for path in (files.ca_cert, files.ca_key, files.server_cert, files.server_key):
        staged.root.joinpath(path.name).write_bytes(path.read_bytes())
    new = renew_server(staged)
    replace_atomic(files.server_cert, staged.server_cert.read_bytes(), files.root)  # the key is not there yet
    with caplog.at_level(logging.WARNING, logger="lanai.security.reload"):
        assert watcher.poll() is None
        assert watcher.poll() is None
    assert len(caplog.records) == 1 and "Still serving " + watcher.current.fingerprint in caplog.text
    replace_atomic(files.server_key, staged.server_key.read_bytes(), files.root)
    pair = watcher.poll()
    assert pair is not None and pair.fingerprint == new


def test_the_watcher_renews_only_the_store_s_own_certificate(files: TlsFiles, tmp_path: Path) -> None:
    home = files.root.parent
    own = CertWatcher.for_settings(Settings(home=home, tls=True).with_store_tls())
    assert own is not None and own.authority == files
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for path in (files.server_cert, files.server_key):
        (elsewhere / path.name).write_bytes(path.read_bytes())
    given = Settings(home=home, tls_certfile=elsewhere / "server.pem", tls_keyfile=elsewhere / "server.key")
    other = CertWatcher.for_settings(given)
    assert other is not None and other.authority is None
    assert CertWatcher.for_settings(Settings(home=home)) is None


def test_load_pair_into_switches_what_new_handshakes_get(files: TlsFiles) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.server_cert, files.server_key)
    old = read_pair(files.server_cert, files.server_key)
    renew_server(files)
    new = read_pair(files.server_cert, files.server_key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert _handshake(listener, port, context, files) == old.fingerprint
        load_pair_into(context, new)
        assert _handshake(listener, port, context, files) == new.fingerprint


def _handshake(listener: socket.socket, port: int, context: ssl.SSLContext, files: TlsFiles) -> str:
    def accept() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    thread = threading.Thread(target=accept)
    thread.start()
    client = ssl.create_default_context(cafile=str(files.ca_cert))
    with socket.create_connection(("127.0.0.1", port)) as raw, client.wrap_socket(raw, server_hostname="box") as tls:
        der = tls.getpeercert(binary_form=True)
        tls.sendall(b"x")
    thread.join(5)
    assert der is not None
    return fingerprint(x509.load_der_x509_certificate(der))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
