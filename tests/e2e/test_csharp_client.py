"""The C# sample (clients/csharp), compiled with Mono's mcs and run with mono against a real server:
multipart and raw-bytes classify, an Open Inference Protocol infer, an API key (and the server's 401
message without one), a retry that waits for a 429's Retry-After, and mTLS with the .p12 that
``lanai certs client`` writes, checked against the box's ca.pem or a pinned fingerprint."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.security.certs import TlsFiles, init_authority, issue_client
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, make_store

SOURCES = Path(__file__).resolve().parents[2] / "clients" / "csharp"

pytestmark = pytest.mark.skipif(
    shutil.which("mcs") is None or shutil.which("mono") is None,
    reason="Mono's mcs and mono are not installed (apt-get install mono-devel; .ci/run does it)",
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("csharp") / "Lanai.Sample.exe"
    sources = sorted(str(p) for p in SOURCES.glob("*.cs"))
    built = subprocess.run(["mcs", f"-out:{exe}", "-r:System.Net.Http.dll", *sources],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    return exe


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Store:
    return make_store(tmp_path_factory.mktemp("csharp-store"), model_files)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, bytes]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    (root / "cat.jpg").write_bytes(photos["chelsea"])
    (root / "cat.png").write_bytes(photos["chelsea.png"])
    return {"jpg": root / "cat.jpg", "png": root / "cat.png"}


@pytest.fixture(scope="module")
def plain(store: Store) -> Iterator[str]:
    settings = Settings(home=store.root, intra_op_threads=1)
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url


def run(sample: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mono", str(sample), *map(str, args)], capture_output=True, text=True, timeout=180)


def label(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("label: "))


def test_multipart_classify_prints_a_cat(sample: Path, plain: str, images: dict[str, Path]) -> None:
    done = run(sample, plain, images["jpg"], "--model", "efficientnet-lite0", "--top-k", "3")
    assert done.returncode == 0, done.stderr
    assert "cat" in label(done.stdout)
    assert float(done.stdout.split("score: ")[1].split()[0]) > 0.1


def test_raw_bytes_classify_and_the_default_model(sample: Path, plain: str, images: dict[str, Path]) -> None:
    done = run(sample, plain, images["png"], "--raw", "--model", "efficientnet-lite0")
    assert done.returncode == 0, done.stderr
    assert "cat" in label(done.stdout)
    done = run(sample, plain, images["jpg"])  # /predict
    assert done.returncode == 0, done.stderr
    assert "cat" in label(done.stdout)


def test_oip_infer_on_the_tiny_model(sample: Path, plain: str) -> None:
    done = run(sample, plain, "--infer-model", "tiny")
    assert done.returncode == 0, done.stderr
    assert "infer tiny input input [1,3,8,8] FP32" in done.stdout
    assert "output logits [1,5] FP32: " in done.stdout
    values = done.stdout.split("output logits [1,5] FP32: ")[1].split()
    assert len(values) == 5 and all(float(v) == float(v) for v in values)


def test_server_errors_exit_non_zero_with_the_message(sample: Path, plain: str, images: dict[str, Path]) -> None:
    done = run(sample, plain, images["jpg"], "--model", "no-such-model")
    assert done.returncode == 1
    assert "HTTP 404 ModelNotFound" in done.stderr and "no-such-model" in done.stderr


def test_api_key_required(sample: Path, store: Store, images: dict[str, Path]) -> None:
    keys = KeyRing(store.root)
    key = keys.create("csharp", "infer")
    slow = keys.create("csharp-slow", "infer", rate=1.0)
    settings = Settings(home=store.root, intra_op_threads=1, auth="required", admin_loopback=False)
    with ServerThread(DataPlane(store, settings), settings) as url:
        refused = run(sample, url, images["jpg"], "--model", "efficientnet-lite0")
        assert refused.returncode == 1
        assert "HTTP 401" in refused.stderr and "this server needs an API key" in refused.stderr
        assert refused.stdout == ""

        done = run(sample, url, images["jpg"], "--model", "efficientnet-lite0", "--key", key)
        assert done.returncode == 0, done.stderr
        assert "cat" in label(done.stdout)

        # one request a second: the infer after the classify is refused with 429 and Retry-After: 1,
        # and the sample waits and tries again
        done = run(sample, url, images["jpg"], "--model", "tiny", "--infer-model", "tiny", "--key", slow)
        assert done.returncode == 0, done.stderr
        assert "HTTP 429, retrying in 1 s" in done.stderr
        assert "output logits [1,5] FP32" in done.stdout

        refused = run(sample, url, images["jpg"], "--model", "tiny", "--infer-model", "tiny", "--key", slow,
                      "--retries", "0")  # fmt: skip
        assert refused.returncode == 1
        assert "HTTP 429" in refused.stderr and "limited to 1 requests per second" in refused.stderr


@pytest.fixture(scope="module")
def tls(store: Store) -> Iterator[tuple[str, str]]:
    """lanai serve --tls with the store's own (ECDSA) CA and server certificate."""
    fingerprint = init_authority(TlsFiles.of(store.root), names=["localhost"], addresses=["127.0.0.1"])
    settings = Settings(home=store.root, intra_op_threads=1, tls=True).with_store_tls()
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url.replace("http://", "https://"), fingerprint


def test_tls_with_a_pinned_fingerprint(sample: Path, tls: tuple[str, str], images: dict[str, Path]) -> None:
    url, fingerprint = tls
    done = run(sample, url, images["jpg"], "--pin", fingerprint.lower().replace(":", ""))
    assert done.returncode == 0, done.stderr
    assert "cat" in label(done.stdout)
    assert run(sample, url, images["jpg"], "--pin", "00" * 32).returncode == 3
    assert run(sample, url, images["jpg"]).returncode == 3  # not a CA the system trusts


def test_mono_cannot_use_lanai_ecdsa_certificates(
    sample: Path, store: Store, tls: tuple[str, str], images: dict[str, Path]
) -> None:
    """Mono has no ECDSA, and lanai's certificates are ECDSA P-256: Mono reads the .p12 that lanai certs
    client writes (SHA-1/3DES; a wrong password is told apart) but cannot use its key, nor check an
    ECDSA chain against ca.pem. The sample says so plainly; .NET 8 does both."""
    url, fingerprint = tls
    files = TlsFiles.of(store.root)
    bundle = issue_client(files, "mono-app")
    pfx = ["--pfx", str(bundle.p12), "--pfx-password", bundle.p12_password, "--pin", fingerprint]
    done = run(sample, url, images["jpg"], *pfx)
    assert done.returncode == 2
    assert "Mono cannot use an ECDSA client certificate" in done.stderr
    wrong = run(sample, url, images["jpg"], "--pfx", bundle.p12, "--pfx-password", "not-it")
    assert wrong.returncode == 2 and "a wrong --pfx-password" in wrong.stderr, wrong.stderr
    done = run(sample, url, images["jpg"], "--ca", files.ca_cert)
    assert done.returncode == 3
    assert "Mono cannot check an ECDSA certificate chain" in done.stderr


def rsa_authority(root: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test RSA CA {root.name}")])
    cert = (
        builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    (root / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
    )  # fmt: skip


def rsa_leaf(
    ca: tuple[x509.Certificate, rsa.RSAPrivateKey], name: str, *sans: x509.GeneralName
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A server certificate for ``sans``; without them, a client certificate with no extensions at all:
    Mono's HttpClientHandler offers a client certificate only if X509Certificate2Collection.Find(
    FindByApplicationPolicy, clientAuth) keeps it, and Mono's Find keeps only certificates without
    extensions (an extended key usage of clientAuth, as lanai's have, is dropped: a Mono bug)."""
    key = rsa.generate_private_key(65537, 2048)
    build = builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca[0].subject, key)
    if sans:
        build = build.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        build = build.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return build.sign(ca[1], hashes.SHA256()), key


@pytest.fixture(scope="module")
def rsa_mtls(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path, str]]:
    """lanai serve --mtls with RSA certificates made elsewhere (--tls-cert, --tls-key and the client CA),
    and a client .p12 encrypted exactly as lanai certs client encrypts its own (SHA-1, 3DES)."""
    root = tmp_path_factory.mktemp("rsa")
    ca = rsa_authority(root)
    server, server_key = rsa_leaf(ca, "localhost", x509.DNSName("localhost"),
                                  x509.IPAddress(ipaddress.ip_address("127.0.0.1")))  # fmt: skip
    (root / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    client, client_key = rsa_leaf(ca, "windows-app")
    password = "correct horse"
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
        .build(password.encode())
    )  # fmt: skip
    p12 = root / "windows-app.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(b"windows-app", client_key, client, [ca[0]], encryption))
    settings = Settings(home=store.root, intra_op_threads=1, mtls=True, tls_certfile=root / "server.pem",
                        tls_keyfile=root / "server.key", tls_client_ca=root / "ca.pem").with_store_tls()  # fmt: skip
    with ServerThread(DataPlane(store, settings), settings) as url:
        yield url.replace("http://", "https://"), root / "ca.pem", p12, password


def test_mtls_with_a_p12_and_the_ca(
    sample: Path, rsa_mtls: tuple[str, Path, Path, str], images: dict[str, Path], tmp_path: Path
) -> None:
    url, ca, p12, password = rsa_mtls
    pfx = ["--pfx", str(p12), "--pfx-password", password]
    done = run(sample, url, images["jpg"], "--model", "efficientnet-lite0", *pfx, "--ca", ca, "--infer-model", "tiny")
    assert done.returncode == 0, done.stderr
    assert "cat" in label(done.stdout)
    assert "output logits [1,5] FP32" in done.stdout
    done = run(sample, url.replace("127.0.0.1", "localhost"), images["jpg"], *pfx, "--ca", ca)
    assert done.returncode == 0, done.stderr

    no_certificate = run(sample, url, images["jpg"], "--ca", ca)  # told why, not cut off in the handshake
    assert no_certificate.returncode == 1 and "requires a client certificate" in no_certificate.stderr
    untrusted = run(sample, url, images["jpg"], *pfx)  # the CA is not one the system trusts
    assert untrusted.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    rsa_authority(tmp_path)  # another CA, as ca.pem in tmp_path
    other_ca = run(sample, url, images["jpg"], *pfx, "--ca", tmp_path / "ca.pem")
    assert other_ca.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in other_ca.stderr
    wrong = run(sample, url, images["jpg"], "--pfx", p12, "--pfx-password", "not-it", "--ca", ca)
    assert wrong.returncode == 2 and "a wrong --pfx-password" in wrong.stderr, wrong.stderr
