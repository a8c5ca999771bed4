from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from lanai.bench.client import Connection, ResponseError, parse_head


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True


class Recorder:
    """A Sink that allows ``budget`` requests and records outcomes."""

    def __init__(self, budget: int = 100) -> None:
        self.budget = budget
        self.outcomes: list[int | str] = []

    def reserve(self, now: int) -> bool:
        self.budget -= 1
        return self.budget >= 0

    def record(self, sent_ns: int, status: int) -> None:
        assert sent_ns > 0
        self.outcomes.append(status)

    def fail(self, sent_ns: int, kind: str) -> None:
        assert sent_ns > 0
        self.outcomes.append(kind)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _connection(loop: asyncio.AbstractEventLoop, sink: Recorder, **kwargs: bool) -> tuple[Connection, FakeTransport]:
    async def make() -> Connection:
        return Connection(sink, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", **kwargs)

    conn = loop.run_until_complete(make())
    transport = FakeTransport()
    conn.connection_made(transport)
    assert conn.send()
    return conn, transport


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;name=value\r\nWiki\r\n0a\r\npedia in\r\n\r\n0\r\nExpires: never\r\n\r\n"
)


@pytest.mark.parametrize("response", [OK, CHUNKED, b"HTTP/1.1 100 Continue\r\n\r\n" + OK])
@pytest.mark.parametrize("piece", [1, 3, 7, 10_000])
def test_responses_parse_in_any_split(loop: asyncio.AbstractEventLoop, response: bytes, piece: int) -> None:
    sink = Recorder()
    conn, transport = _connection(loop, sink)
    for _ in range(3):
        for i in range(0, len(response), piece):
            conn.data_received(response[i : i + piece])
    status = 201 if response is CHUNKED else 200
    assert sink.outcomes == [status] * 3
    assert len(transport.written) == 4 and conn.sent_ns  # keep-alive: the 4th request is in flight


def test_two_responses_in_one_read_only_count_what_was_asked(loop: asyncio.AbstractEventLoop) -> None:
    sink = Recorder()
    conn, transport = _connection(loop, sink)
    conn.data_received(OK + OK)  # the second one was never requested: pipelining is not ours
    assert sink.outcomes == [200] and len(transport.written) == 2


def test_connection_close_stops_reuse(loop: asyncio.AbstractEventLoop) -> None:
    sink = Recorder()
    conn, transport = _connection(loop, sink)
    conn.data_received(b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert sink.outcomes == [503] and transport.closing and len(transport.written) == 1
    conn.connection_lost(None)
    assert sink.outcomes == [503] and conn.closed.done()


def test_http10_body_ends_at_close(loop: asyncio.AbstractEventLoop) -> None:
    sink = Recorder()
    conn, _ = _connection(loop, sink)
    conn.data_received(b"HTTP/1.0 200 OK\r\n\r\nsome body")
    assert sink.outcomes == []
    conn.connection_lost(None)
    assert sink.outcomes == [200]


def test_lost_mid_response_is_a_connection_error(loop: asyncio.AbstractEventLoop) -> None:
    sink = Recorder()
    conn, _ = _connection(loop, sink)
    conn.data_received(OK[:-2])
    conn.connection_lost(ConnectionResetError())
    assert sink.outcomes == ["connection"]


def test_head_and_204_have_no_body(loop: asyncio.AbstractEventLoop) -> None:
    sink = Recorder()
    conn, _ = _connection(loop, sink, head_request=True)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    conn.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert sink.outcomes == [200, 204]


def test_garbage_is_a_protocol_error_and_aborts(loop: asyncio.AbstractEventLoop) -> None:
    sink = Recorder()
    conn, transport = _connection(loop, sink)
    conn.data_received(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert sink.outcomes == ["protocol"] and transport.aborted


def test_no_budget_closes_instead_of_sending(loop: asyncio.AbstractEventLoop) -> None:
    sink = Recorder(budget=1)
    conn, transport = _connection(loop, sink)
    conn.data_received(OK)
    assert sink.outcomes == [200] and transport.closing and len(transport.written) == 1


def test_abort_fails_the_request_in_flight_once(loop: asyncio.AbstractEventLoop) -> None:
    sink = Recorder()
    conn, transport = _connection(loop, sink)
    conn.abort("timeout")
    conn.connection_lost(None)
    assert sink.outcomes == ["timeout"] and transport.aborted


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12", (200, 12, False, False)),
        (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length:0\r\nConnection: close", (503, 0, False, True)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 7", (200, None, True, False)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 3", (200, 3, False, True)),
        (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3", (200, 3, False, False)),
        (b"HTTP/1.1 204", (204, None, False, False)),
    ],
)
def test_parse_head(head: bytes, expected: tuple[int, int | None, bool, bool]) -> None:
    assert parse_head(head) == expected


@pytest.mark.parametrize(
    "head", [b"HTTP/2 200", b"HTTP/1.1 2000 OK", b"HTTP/1.1 abc OK", b"HTTP/1.1 200 OK\r\nContent-Length: x"]
)
def test_parse_head_rejects(head: bytes) -> None:
    with pytest.raises(ResponseError):
        parse_head(head)
