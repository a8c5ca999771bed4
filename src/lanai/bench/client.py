"""A minimal HTTP/1.1 keep-alive client connection, cheap enough to never be a benchmark's bottleneck.

One :class:`Connection` sends the same prebuilt request bytes again as soon as a response completes,
entirely from ``data_received``: no coroutine, future or timer per request. It reads just the status
line, ``Content-Length``, ``Transfer-Encoding: chunked`` and ``Connection: close``, and discards bodies
as they arrive. What to send and what happened are decided by a :class:`Sink` (the load generator).
"""

from __future__ import annotations

import asyncio
from time import perf_counter_ns
from typing import Protocol, cast

__all__ = ["Connection", "ResponseError", "Sink", "parse_head"]

MAX_HEAD = 64 * 1024  # bytes of status line + headers (or of one chunk-size line) before we give up
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE = range(6)
_CONTENT_LENGTH = b"\r\ncontent-length:"
_TRANSFER_ENCODING = b"\r\ntransfer-encoding:"
_CONNECTION = b"\r\nconnection:"


class ResponseError(ValueError):
    """The server sent something that is not an HTTP/1.x response we can read."""


class Sink(Protocol):
    """What a connection asks before each request and tells after each outcome (times from perf_counter_ns)."""

    def reserve(self, now: int) -> bool:
        """True if a request may be sent now (and count it as sent)."""

    def record(self, sent_ns: int, status: int) -> None:
        """A response with ``status`` completed for the request sent at ``sent_ns``."""

    def fail(self, sent_ns: int, kind: str) -> None:
        """The request sent at ``sent_ns`` failed: ``"connection"``, ``"timeout"`` or ``"protocol"``."""


def parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """Parse a response head (status line and headers, without the final blank line).

    Returns ``(status, content_length, chunked, close)``; ``content_length`` is None when absent or when
    the body is chunked. ``close`` is true for ``Connection: close`` and for HTTP/1.0 without keep-alive.
    """
    lower = head.lower()
    if not lower.startswith(b"http/1.") or len(head) < 12 or head[12:13] not in (b"", b" ", b"\r"):
        raise ResponseError(f"not an HTTP/1.x status line: {bytes(head[:40])!r}")
    try:
        status = int(head[9:12])
    except ValueError:
        raise ResponseError(f"bad status code in {bytes(head[:40])!r}") from None
    chunked = b"chunked" in (_header(lower, _TRANSFER_ENCODING) or b"")
    connection = _header(lower, _CONNECTION) or b""
    close = b"close" in connection or (lower[7:8] == b"0" and b"keep-alive" not in connection)
    raw_length = None if chunked else _header(lower, _CONTENT_LENGTH)
    try:
        length = None if raw_length is None else int(raw_length)
    except ValueError:
        raise ResponseError(f"bad Content-Length: {raw_length!r}") from None
    if length is not None and length < 0:
        raise ResponseError(f"negative Content-Length: {length}")
    return status, length, chunked, close


def _header(lower: bytes, key: bytes) -> bytes | None:
    start = lower.find(key)
    if start < 0:
        return None
    start += len(key)
    end = lower.find(b"\r\n", start)
    return lower[start:] if end < 0 else lower[start:end]


class Connection(asyncio.Protocol):
    """One keep-alive connection re-sending ``payload``; ``closed`` resolves when the connection is gone."""

    def __init__(self, sink: Sink, payload: bytes, *, head_request: bool = False) -> None:
        self.sink = sink
        self.payload = payload
        self.head_request = head_request  # responses to HEAD have no body whatever their headers say
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_ns = 0  # when the request in flight was sent; 0 when none is
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._state = _HEAD
        self._need = 0
        self._status = 0
        self._close = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self) -> bool:
        """Send the request if the sink allows it; otherwise close the connection and return False."""
        transport = cast(asyncio.Transport, self.transport)
        now = perf_counter_ns()
        if transport.is_closing() or not self.sink.reserve(now):
            transport.close()
            return False
        self.sent_ns = now
        transport.write(self.payload)
        return True

    def abort(self, kind: str) -> None:
        """Fail the request in flight (if any) as ``kind`` and drop the connection at once."""
        sent, self.sent_ns = self.sent_ns, 0
        if sent:
            self.sink.fail(sent, kind)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        try:
            while self.sent_ns and self._step(buf):
                pass
        except ResponseError:
            self.abort("protocol")
        if not self.sent_ns:
            buf.clear()  # nothing is in flight: whatever the server sent is not ours to read

    def connection_lost(self, exc: Exception | None) -> None:
        sent, self.sent_ns = self.sent_ns, 0
        if sent and self._state == _UNTIL_CLOSE:
            self.sink.record(sent, self._status)  # the close is what ends this body
        elif sent:
            self.sink.fail(sent, "connection")
        if not self.closed.done():
            self.closed.set_result(None)

    def _step(self, buf: bytearray) -> bool:
        """Parse as far as ``buf`` allows; True when progress was made and more may follow."""
        state = self._state
        if state == _HEAD:
            return self._read_head(buf)
        if state in (_BODY, _CHUNK_DATA):
            return self._read_body(buf)
        if state in (_CHUNK_SIZE, _TRAILER):
            return self._read_chunk_line(buf)
        buf.clear()  # _UNTIL_CLOSE
        return False

    def _read_head(self, buf: bytearray) -> bool:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ResponseError(f"response head longer than {MAX_HEAD} bytes")
            return False
        status, length, chunked, close = parse_head(bytes(buf[:end]))
        del buf[: end + 4]
        if 100 <= status < 200 and status != 101:
            return True  # an interim response: the final one follows
        self._status, self._close = status, close
        if self.head_request or status in (204, 304) or length == 0:
            self._complete()
        elif chunked:
            self._state = _CHUNK_SIZE
        elif length is None:
            self._state, self._close = _UNTIL_CLOSE, True
        else:
            self._state, self._need = _BODY, length
        return True

    def _read_body(self, buf: bytearray) -> bool:
        need, have = self._need, len(buf)
        if have < need:
            self._need = need - have
            buf.clear()
            return False
        del buf[:need]
        if self._state == _BODY:
            self._complete()
        else:
            self._state = _CHUNK_SIZE
        return True

    def _read_chunk_line(self, buf: bytearray) -> bool:
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ResponseError("chunk-size or trailer line too long")
            return False
        line = bytes(buf[:end])
        del buf[: end + 2]
        if self._state == _TRAILER:
            if not line:
                self._complete()
            return True
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise ResponseError(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            self._state = _TRAILER
        else:
            self._state, self._need = _CHUNK_DATA, size + 2  # data and its CRLF
        return True

    def _complete(self) -> None:
        sent, self.sent_ns = self.sent_ns, 0
        self._state = _HEAD
        self._buf.clear()  # one request in flight at a time: bytes past its response were never asked for
        self.sink.record(sent, self._status)
        if self._close:
            cast(asyncio.Transport, self.transport).close()
        else:
            self.send()
