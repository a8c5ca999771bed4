"""Pairing end to end over real sockets and real certificates: the box opens a pairing (``lanai pair``,
a process of its own), a device pairs with the code (``lanai pair BOX CODE``, another process, or
``lanai.client.pair``), and from then on the device calls the box with its key, trusting only the box's
CA. A wrong code, a used code and a man in the middle with a certificate of its own all fail."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from lanai.client import Forbidden, Unauthorized
from lanai.client.pairing import pair, paired
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.grpc import inference_pb2 as pb
from lanai.grpc.inference_pb2_grpc import GRPCInferenceServiceStub
from lanai.security.certs import TlsFiles, init_authority
from lanai.security.keys import KeyRing
from lanai.store import Store

from support import ServerThread, make_store


def _store(factory: pytest.TempPathFactory, model_files: dict[str, Path], name: str) -> Store:
    store = make_store(factory.mktemp(name), model_files)
    init_authority(TlsFiles.of(store.root), names=["localhost"], addresses=["127.0.0.1"])
    return store


def _serve(store: Store, **options: object) -> ServerThread:
    settings = Settings(home=store.root, intra_op_threads=1, **options).with_store_tls()  # type: ignore[arg-type]
    return ServerThread(DataPlane(store, settings), settings)


def _https(server: ServerThread) -> str:
    return server.url.replace("http://", "https://")


@pytest.fixture(scope="module")
def tls_store(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Store:
    return _store(tmp_path_factory, model_files, "pair-tls")


@pytest.fixture(scope="module")
def tls_box(tls_store: Store) -> Iterator[ServerThread]:
    # keys required, and no admin by loopback: pairing is how a device gets its key
    server = _serve(tls_store, tls=True, auth="required", admin_loopback=False)
    with server:
        yield server


def _admin(server: ServerThread, store: Store) -> httpx.Client:
    """The box's admin (its key), trusting the box's CA."""
    ring = KeyRing(store.root)
    path = store.root / "admin-key-for-tests"
    if not path.exists():
        path.write_text(ring.create("test-admin", "admin"))
    headers = {"Authorization": f"Bearer {path.read_text()}"}
    return httpx.Client(base_url=_https(server), verify=_trust(store), headers=headers, timeout=30)


def _trust(store: Store) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(TlsFiles.of(store.root).ca_cert))


def _open(server: ServerThread, store: Store, **request: object) -> str:
    with _admin(server, store) as admin:
        answer = admin.post("/v1/admin/pairing", json=request)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["code"])


def test_a_device_pairs_and_then_calls_with_its_key_and_the_box_s_ca(
    tls_box: ServerThread, tls_store: Store, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    anonymous = httpx.post(_https(tls_box) + "/v1/models/tiny/classify", content=photos["chelsea"],
                           verify=_trust(tls_store))  # fmt: skip
    assert anonymous.status_code == 401  # the box asks for a key
    code = _open(tls_box, tls_store, role="infer", models=["tiny"])
    server = pair(_https(tls_box), code, "Reception PC", name="box", home=tmp_path)
    assert server.device == "reception-pc" and server.role == "infer"
    assert server.ca_file is not None and server.ca_file.read_text() == TlsFiles.of(tls_store.root).ca_cert.read_text()
    assert (server.folder / "server.toml").stat().st_mode & 0o077 == 0  # the key is readable by its owner only
    with paired("box", home=tmp_path).client() as lanai:
        assert lanai.classify("tiny", photos["chelsea"]).label
    record = next(k for k in KeyRing(tls_store.root).list() if k.name == "reception-pc")
    assert record.device and record.role == "infer" and record.models == ("tiny",)
    with _admin(tls_box, tls_store) as admin:
        status = admin.get("/v1/admin/pairing").json()
    assert not status["open"] and [d["name"] for d in status["paired"]] == ["reception-pc"]


def test_a_wrong_code_fails_and_a_used_code_fails(tls_box: ServerThread, tls_store: Store, tmp_path: Path) -> None:
    code = _open(tls_box, tls_store, attempts=2)
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    with pytest.raises(Forbidden, match="code is wrong"):
        pair(_https(tls_box), wrong, "intruder", name="x", home=tmp_path)
    pair(_https(tls_box), code, "second-pc", name="y", home=tmp_path)
    with pytest.raises(Forbidden, match="no pairing is open"):  # the code again: it is spent
        pair(_https(tls_box), code, "third-pc", name="z", home=tmp_path)
    names = {k.name for k in KeyRing(tls_store.root).list()}
    assert "second-pc" in names and not {"intruder", "third-pc"} & names


class TlsRelay:
    """A man in the middle: terminates TLS with a certificate of its own (from another CA) and relays
    every byte to the box over TLS. It knows nothing of the code; it sees and passes every message."""

    def __init__(self, target_port: int, cert: Path, key: Path) -> None:
        self.target_port = target_port
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(str(cert), str(key))
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.relayed = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", 0, ssl=self.server_context)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _shutdown(self) -> None:
        """Stop listening and end every relayed connection (nothing left pending for the next test)."""
        self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_context = ssl.create_default_context()
        client_context.check_hostname, client_context.verify_mode = False, ssl.CERT_NONE
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port, ssl=client_context)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    self.relayed += len(data)
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_man_in_the_middle_with_its_own_certificate_fails_the_pairing(
    tls_box: ServerThread, tls_store: Store, tmp_path: Path
) -> None:
    other = TlsFiles(tmp_path / "mitm-tls")
    init_authority(other, names=["localhost"], addresses=["127.0.0.1"])
    relay = TlsRelay(int(tls_box.url.rsplit(":", 1)[1]), other.server_cert, other.server_key)
    try:
        code = _open(tls_box, tls_store)
        with pytest.raises(Forbidden, match="another certificate"):
            pair(f"https://127.0.0.1:{relay.port}", code, "victim-pc", name="victim", home=tmp_path)
        assert relay.relayed > 0  # the messages did go through it
    finally:
        relay.close()
    assert "victim-pc" not in {k.name for k in KeyRing(tls_store.root).list()}
    with _admin(tls_box, tls_store) as admin:
        status = admin.get("/v1/admin/pairing").json()
    assert "victim-pc" not in [d["name"] for d in status["paired"]]


def test_pairing_under_mtls_issues_a_certificate_for_the_device_s_own_key(
    tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path], tmp_path: Path, photos: dict[str, bytes]
) -> None:
    store = _store(tmp_path_factory, model_files, "pair-mtls")
    box = _serve(store, mtls=True, admin_loopback=False)
    files = TlsFiles.of(store.root)
    with box:
        # the box's admin: a certificate of its own (lanai pair makes one the same way)
        from lanai.security.certs import issue_client

        admin = issue_client(files, "admin-cli", "admin")
        with httpx.Client(base_url=_https(box), verify=_context(files, admin.cert, admin.key)) as http:
            code = http.post("/v1/admin/pairing", json={"role": "infer"}).json()["code"]
        server = pair(_https(box), code, "kiosk", name="kiosk", home=tmp_path)
        assert server.cert_files is not None
        assert "PRIVATE KEY" in Path(server.cert_files[1]).read_text()
        assert not files.client("kiosk", ".key").exists()  # the device's private key never left it
        with server.client() as lanai:
            assert lanai.classify("tiny", photos["chelsea"]).label
        cert_pem, key_pem = (Path(p).read_bytes() for p in server.cert_files)
        credentials = grpc.ssl_channel_credentials(files.ca_cert.read_bytes(), key_pem, cert_pem)
        with grpc.secure_channel(box.grpc_address, credentials) as channel:
            assert GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name="tiny")).name == "tiny"
        # revoking the device revokes its key and its certificate, without a restart
        KeyRing(store.root).revoke("kiosk")
        time.sleep(0.6)
        with server.client() as lanai, pytest.raises(Unauthorized, match="revoked"):
            lanai.classify("tiny", photos["chelsea"])


def _context(files: TlsFiles, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(str(cert), str(key))
    return context


def test_lanai_pair_on_the_box_and_on_the_device_as_two_processes(
    tls_box: ServerThread, tls_store: Store, tmp_path: Path
) -> None:
    _admin(tls_box, tls_store).close()  # the admin key exists
    env = {**os.environ, "LANAI_CLIENT_HOME": str(tmp_path / "device")}
    env["LANAI_API_KEY"] = (tls_store.root / "admin-key-for-tests").read_text()  # lanai pair's admin key
    lanai = [sys.executable, "-m", "lanai.cli"]
    box = subprocess.Popen(
        [*lanai, "pair", "--home", str(tls_store.root), "--url", _https(tls_box), "--ttl", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert box.stdout is not None
    code = None
    for line in box.stdout:
        found = re.search(r"pairing code:\s+(\d{4}-\d{4})", line)
        if found:
            code = found.group(1)
            break
    assert code, box.stderr.read() if box.stderr else ""
    device = subprocess.run(
        [*lanai, "pair", _https(tls_box), code, "--name", "shop-floor", "--save-as", "line1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert device.returncode == 0, device.stderr
    assert "paired with" in device.stdout and "SHA-256" in device.stdout
    out, err = box.communicate(timeout=30)
    assert box.returncode == 0, err
    assert "paired 'shop-floor'" in out
    listed = subprocess.run([*lanai, "devices", "--home", str(tls_store.root), "list"], capture_output=True,
                            text=True, env=env, timeout=60)  # fmt: skip
    assert "shop-floor" in listed.stdout
    assert paired("line1", home=tmp_path / "device" / "paired").device == "shop-floor"
