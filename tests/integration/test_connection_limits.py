"""Slow and greedy clients on real sockets: a request's headers and body have deadlines, and one
address may hold only so many connections; ordinary clients notice nothing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.config import Settings
from lanai.dataplane import DataPlane

from support import ServerThread, make_store


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path]) -> Iterator[str]:
    store = make_store(tmp_path_factory.mktemp("limits"), model_files)
    settings = Settings(home=store.root, header_timeout=0.5, body_timeout=0.5, max_connections_per_client=4,
                        intra_op_threads=1, grpc=False)  # fmt: skip
    with ServerThread(DataPlane(store, settings), settings) as server_url:
        yield server_url


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reading what it sent meanwhile)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    while sock.recv(65536):
        pass
    return time.monotonic() - start


def test_slow_headers_are_cut_off(url: str) -> None:
    with connect(url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
        assert closed_within(sock, 5) < 3


def test_a_silent_connection_is_cut_off(url: str) -> None:
    with connect(url) as sock:
        assert closed_within(sock, 5) < 3


def test_a_slow_body_is_cut_off(url: str) -> None:
    with connect(url) as sock:
        sock.sendall(b"POST /v1/models/tiny/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 10)
        assert closed_within(sock, 5) < 3


def test_one_address_may_hold_only_so_many_connections(url: str) -> None:
    held = [connect(url) for _ in range(4)]
    try:
        for sock in held:  # each made a request, so each is surely open at the server
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with connect(url) as extra:
            answer = b""
            extra.settimeout(5)
            while chunk := extra.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 429") and b"too many connections" in answer
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # once they are closed, the address may connect again
        try:
            if httpx.get(url + "/v2/health/live", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_ordinary_clients_notice_nothing(url: str, photos: dict[str, bytes]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(3):
            r = client.post("/v1/models/tiny/classify", files={"file": ("c.jpg", photos["chelsea"])})
            assert r.status_code == 200
            time.sleep(0.6)  # idle longer than the header deadline between requests: keep-alive still works


def test_the_server_holds_only_so_many_connections_in_all(tmp_path: Path, model_files: dict[str, Path]) -> None:
    """Past ``max_connections`` over all addresses, one more gets a 503 with Retry-After (a load balancer
    or client library retries it), like the server's other refusals; uvicorn's own limit sent a bare 503."""
    store = make_store(tmp_path, model_files)
    settings = Settings(home=store.root, max_connections=3, intra_op_threads=1, grpc=False, discovery=False)
    with ServerThread(DataPlane(store, settings), settings) as server_url:
        port = int(server_url.rsplit(":", 1)[1])
        held = []
        try:
            for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):  # three addresses, one connection each
                sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
                held.append(sock)
                sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.4", 0)) as extra:
                answer = b""
                while chunk := extra.recv(65536):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower(), answer
            assert b"as many connections open" in body
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while httpx.get(server_url + "/v2/health/live", timeout=5).status_code != 200:  # room again
            assert time.monotonic() < deadline
            time.sleep(0.05)
