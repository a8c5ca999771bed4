"""A real server advertised over mDNS on loopback: found by discover(), with its ports, models and state;
the record follows an unload and a drain, and the box disappears when the advertiser stops."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lanai.client import Client
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.discovery import Box, discover, discover_async
from lanai.discovery.advertise import Advertiser
from lanai.serve import Service, run_loop
from lanai.store import Store

from support import ServerThread, make_store

LOOPBACK = ["127.0.0.1"]
DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def multicast_loopback() -> None:
    """mDNS on loopback needs the interface's MULTICAST flag (root, or CAP_NET_ADMIN, sets it)."""
    try:
        shown = subprocess.run(["ip", "link", "show", "lo"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot inspect the loopback interface (no 'ip' command?): {exc}")
    if "MULTICAST" in shown.stdout.split(">")[0]:
        return
    done = subprocess.run(["ip", "link", "set", "lo", "multicast", "on"], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        pytest.skip(f"multicast cannot be enabled on loopback here ({done.stderr.strip()}): mDNS cannot be tested")


@pytest.fixture(scope="module")
def box_server(
    tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path], multicast_loopback: None
) -> Iterator[ServerThread]:
    store = make_store(tmp_path_factory.mktemp("discovery-store"), model_files)
    settings = Settings(home=store.root, intra_op_threads=1)
    server = ServerThread(DataPlane(store, settings), settings)
    with server:
        yield server


async def _until(condition: Callable[[Box | None], bool], name: str) -> Box | None:
    """Browse (short rounds) until the box ``name`` (None: not found) satisfies ``condition``."""
    deadline = time.monotonic() + DEADLINE_S
    found: Box | None = None
    while time.monotonic() < deadline:
        found = next((b for b in await discover_async(0.5, interfaces=LOOPBACK) if b.name == name), None)
        if condition(found):
            return found
    raise AssertionError(f"after {DEADLINE_S} s of browsing, the box {name} was still {found}")


def test_a_served_box_is_found_follows_its_models_and_state_and_disappears(
    box_server: ServerThread, photos: dict[str, bytes]
) -> None:
    service = box_server.service
    name = f"lanai-test-{secrets.token_hex(4)}"

    async def scenario() -> None:
        advertiser = Advertiser(interfaces=LOOPBACK, hostname=name, check_every=0.1)
        assert await advertiser.start(service.plane, service.settings, service.http_port, service.grpc_port)
        try:
            assert advertiser.name == f"{name}._lanai._tcp.local."
            box = await _until(lambda b: b is not None, name)
            assert box is not None
            assert box.port == service.http_port and box.addresses == ("127.0.0.1",)
            assert box.grpc_port == service.grpc_port
            assert box.tls is False and box.state == "ready" and box.version
            assert len(box.id) == 16 and (service.settings.home / "box-id").read_text().strip() == box.id
            assert set(box.models) == {"efficientnet-lite0", "tiny", "tiny-fixed"}
            assert box.tasks == ("classify",)
            assert box.base_url == box_server.url

            # The base URL is what the client takes.
            def classify() -> str:
                with Client(box.base_url) as lanai:
                    return lanai.classify("tiny", photos["chelsea"]).label

            assert await asyncio.to_thread(classify) in {"apple", "banana", "cherry", "date", "elder"}

            # Unloading a model (an admin call from this machine) changes the record within a check.
            async with httpx.AsyncClient(base_url=box_server.url, timeout=30) as http:
                (await http.post("/v2/repository/models/tiny/unload")).raise_for_status()
            box = await _until(lambda b: b is not None and "tiny" not in b.models, name)
            assert box is not None and set(box.models) == {"efficientnet-lite0", "tiny-fixed"}

            await advertiser.drain()
            box = await _until(lambda b: b is not None and b.state == "draining", name)
            assert box is not None and box.port == service.http_port
        finally:
            await advertiser.stop()
        assert advertiser.info is None
        await _until(lambda b: b is None, name)

    asyncio.run(scenario())


def test_the_sync_discover_works_inside_and_outside_an_event_loop(box_server: ServerThread) -> None:
    service = box_server.service
    name = f"lanai-test-{secrets.token_hex(4)}"

    async def scenario() -> None:
        advertiser = Advertiser(interfaces=LOOPBACK, hostname=name)
        assert await advertiser.start(service.plane, service.settings, service.http_port, None)
        try:
            await _until(lambda b: b is not None, name)
            # From plain code, on its own loop.
            found = [b for b in await asyncio.to_thread(discover, 0.5, interfaces=LOOPBACK) if b.name == name]
            assert found and found[0].port == service.http_port and found[0].grpc_port is None

            # From (another thread's) running loop, it browses in a worker thread instead of failing.
            async def inside_a_loop() -> list[Box]:
                return discover(0.5, interfaces=LOOPBACK)

            found = [b for b in await asyncio.to_thread(asyncio.run, inside_a_loop()) if b.name == name]
            assert found and found[0].port == service.http_port
        finally:
            await advertiser.stop()

    asyncio.run(scenario())


def test_the_advertiser_gives_up_quietly_where_mdns_cannot_work(
    box_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """An address no interface has: discovery is off, logged, and serving is not disturbed."""
    service = box_server.service

    async def scenario() -> bool:
        advertiser = Advertiser(interfaces=["192.0.2.1"], hostname="lanai-test-nowhere")
        started = await advertiser.start(service.plane, service.settings, service.http_port, None)
        await advertiser.stop()
        return started

    assert asyncio.run(scenario()) is False
    assert "not advertising" in caplog.text


def test_started_in_the_background_it_can_be_stopped_at_any_point(box_server: ServerThread) -> None:
    """What ``lanai serve`` does: start_soon() after the doors open, drain() and stop() when it drains,
    even while the name is still being probed; nothing is left behind (warnings are errors here)."""
    service = box_server.service

    async def scenario() -> None:
        # Stopped at once, while probing: cancelled cleanly, never advertised.
        early = Advertiser(interfaces=LOOPBACK, hostname=f"lanai-test-{secrets.token_hex(4)}")
        early.start_soon(service.plane, service.settings, service.http_port, service.grpc_port)
        await asyncio.sleep(0)
        await early.drain()
        started = time.monotonic()
        await early.stop()
        assert time.monotonic() - started < 5 and early.info is None

        # Left to finish: found, then drained and gone.
        name = f"lanai-test-{secrets.token_hex(4)}"
        advertiser = Advertiser(interfaces=LOOPBACK, hostname=name)
        advertiser.start_soon(service.plane, service.settings, service.http_port, service.grpc_port)
        try:
            box = await _until(lambda b: b is not None, name)
            assert box is not None and box.state == "ready"
            await advertiser.drain()
            await _until(lambda b: b is not None and b.state == "draining", name)
        finally:
            await advertiser.stop()
        await _until(lambda b: b is None, name)

    asyncio.run(scenario())


def _serving(settings: Settings) -> tuple[Service, threading.Thread]:
    service = Service(DataPlane(Store(settings.home), settings), settings)
    thread = threading.Thread(target=run_loop, args=(service.run(),), daemon=True)
    thread.start()
    assert service.started.wait(60), "the service did not start"
    return service, thread


@pytest.mark.skipif(
    "discovery" not in {f.name for f in dataclasses.fields(Settings)},
    reason="lanai serve does not advertise yet: the Settings.discovery wiring is not in",
)
def test_lanai_serve_advertises_itself_unless_told_not_to(
    tmp_path: Path, model_files: dict[str, Path], multicast_loopback: None
) -> None:
    store = make_store(tmp_path / "store", model_files)
    base = Settings(home=store.root, host="127.0.0.1", port=0, grpc=False, intra_op_threads=1)

    def on_port(port: int) -> Callable[[list[Box]], bool]:
        return lambda boxes: any(b.port == port for b in boxes)

    service, thread = _serving(dataclasses.replace(base, discovery=False))  # type: ignore[call-arg]
    try:
        assert getattr(service, "advertiser", None) is None
        assert not on_port(service.http_port)(discover(1.0, interfaces=LOOPBACK))
    finally:
        service.stop()
        thread.join(30)

    service, thread = _serving(base)
    port = service.http_port
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not on_port(port)(boxes := discover(0.5, interfaces=LOOPBACK)):
            assert time.monotonic() < deadline, "lanai serve was not found on loopback"
        [box] = [b for b in boxes if b.port == port]
        assert box.state == "ready" and box.grpc_port is None and set(box.models) >= {"tiny", "tiny-fixed"}
        assert box.base_url == f"http://127.0.0.1:{port}"
    finally:
        service.stop()
        thread.join(30)
    assert service.finished.is_set()
    deadline = time.monotonic() + DEADLINE_S
    while on_port(port)(discover(0.5, interfaces=LOOPBACK)):
        assert time.monotonic() < deadline, "lanai serve was still advertised after it stopped"


def test_the_id_follows_a_renewed_certificate(box_server: ServerThread, tmp_path: Path) -> None:
    """Under TLS the id is the served certificate's fingerprint prefix: after a renewal (the certificate
    watcher hands the doors and the advertiser the new pair) the record says the new one, no restart."""
    from lanai.security.certs import TlsFiles, init_authority
    from lanai.security.reload import read_pair

    files = TlsFiles(tmp_path / "tls")
    init_authority(files, names=["localhost"], addresses=["127.0.0.1"])
    pair = read_pair(files.server_cert, files.server_key)
    expected = pair.fingerprint.replace(":", "").lower()[:16]
    service = box_server.service
    name = f"lanai-test-{secrets.token_hex(4)}"

    async def scenario() -> None:
        advertiser = Advertiser(interfaces=LOOPBACK, hostname=name, check_every=0.1)
        assert await advertiser.start(service.plane, service.settings, service.http_port, service.grpc_port)
        try:
            before = await _until(lambda b: b is not None, name)
            assert before is not None and before.id != expected
            advertiser.use_certificate(pair)
            after = await _until(lambda b: b is not None and b.id == expected, name)
            assert after is not None and after.port == service.http_port
        finally:
            await advertiser.stop()

    asyncio.run(scenario())
