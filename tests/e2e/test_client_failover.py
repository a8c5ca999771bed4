"""Failover for real: two ``lanai serve`` processes, a run of requests through one client given both, and
one server killed (SIGKILL) mid-run. Every request must still get its correct answer, from the other."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from lanai.client import AsyncClient, Client, RetryPolicy

from support import ServeProcess

REQUESTS = 120
KILL_AFTER = 30


class Counting(httpx.HTTPTransport):
    """Counts the transport failures the client met (so the test knows failover really happened)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
            response.read()
        except httpx.TransportError as exc:
            self.failures.append(type(exc).__name__)
            raise
        return response


def wait_ready(client: Client, deadline_s: float = 90) -> None:
    """Poll readiness (no fixed sleeps): every server ready, or fail at the deadline."""
    deadline = time.monotonic() + deadline_s
    while not all(client.probe().values()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the servers did not become ready: {client.probe()}")
        time.sleep(0.05)


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    started: list[ServeProcess] = []
    try:
        for name in ("a", "b"):
            started.append(ServeProcess(tmp_path / name, "--no-grpc", "--threads", "1"))
        yield started[0], started[1]
    finally:
        for serve in started:
            serve.stop()


def test_sync_client_survives_a_server_killed_mid_run(
    two_servers: tuple[ServeProcess, ServeProcess], photos: dict[str, bytes]
) -> None:
    a, b = two_servers
    policy = RetryPolicy(attempts=6, deadline=60)
    transport = Counting()
    with Client([a.url, b.url], retry=policy, timeout=30, connect_timeout=2, transport=transport) as client:
        wait_ready(client)
        expected = client.classify("efficientnet-lite0", photos["chelsea"]).label
        done = 0
        lock = threading.Lock()

        def one(_: int) -> tuple[str, float]:
            nonlocal done
            result = client.classify("efficientnet-lite0", photos["chelsea"])
            with lock:
                done += 1
                if done == KILL_AFTER:
                    a.kill()
            return result.label, result.score

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(one, range(REQUESTS)))
        assert a.proc.returncode == -signal.SIGKILL
        assert [label for label, _ in answers] == [expected] * REQUESTS
        assert client.probe() == {a.url: False, b.url: True}
    assert transport.failures  # the killed server's connections did fail (and the client failed over)
    print("transport failures met:", transport.failures)


def test_async_client_survives_a_server_killed_mid_run(
    two_servers: tuple[ServeProcess, ServeProcess], photos: dict[str, bytes]
) -> None:
    a, b = two_servers
    with Client([a.url, b.url]) as probe:
        wait_ready(probe)

    async def main() -> list[str]:
        async with AsyncClient([a.url, b.url], retry=RetryPolicy(attempts=6, deadline=60), connect_timeout=2) as client:
            gate = asyncio.Semaphore(8)
            done = 0

            async def one() -> str:
                nonlocal done
                async with gate:
                    result = await client.classify("efficientnet-lite0", photos["coffee"])
                done += 1
                if done == KILL_AFTER:
                    a.kill()
                return result.label

            return list(await asyncio.gather(*(one() for _ in range(REQUESTS))))

    labels = asyncio.run(main())
    assert a.proc.returncode == -signal.SIGKILL
    assert labels == ["espresso"] * REQUESTS
