"""Accept every waiting connection at once, not one per event-loop turn.

libuv (under uvloop) accepts one connection each time the loop turns (libuv PR 3696). A loop busy with
hundreds of requests turns every 5–30 ms, so a burst of new connections (clients reconnecting together,
an overload) is taken at 30–200 a second: measured, 700 connections sat in the kernel's accept queue for
up to 10 s, unseen by lanai: neither served nor refused with a 503, their requests' time counted by the
client all the same. asyncio's own loop accepts up to the backlog per turn; this does the same on any
loop: a reader on the listening socket accepts until the queue is empty (at most ``per_turn``), and
hands each socket to the loop as a connection of uvicorn's protocol (``loop.connect_accepted_socket``,
which also does the TLS handshake).

``Acceptor`` stands in for the ``asyncio.Server`` uvicorn keeps (``close``, ``wait_closed``), so uvicorn's
shutdown stops it as it would its own.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable

__all__ = ["Acceptor"]

log = logging.getLogger(__name__)

_OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_RETRY_S = 1.0
"""How long accepting pauses when the process is out of file descriptors (as asyncio's loop does)."""


class Acceptor:
    """Accepts connections on ``sock`` (listening already) and serves each with ``protocol_factory``."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None = None,
        per_turn: int = 512,
    ) -> None:
        self.sock = sock
        self._factory = protocol_factory
        self._ssl = ssl_context
        self._per_turn = per_turn
        self._loop = asyncio.get_running_loop()
        self._starting: set[asyncio.Task] = set()
        self._closed = False
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(self._per_turn):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_FILES:
                    # that connection's own error (its client gave up, its network went away): skip it
                    log.debug("a connection failed as it was accepted: %s", exc)
                    continue
                log.warning(
                    "cannot accept connections: %s. Hint: raise the open-files limit (ulimit -n, systemd "
                    "LimitNOFILE=) or lower max_connections. Retrying in %g s.", exc.strerror, _RETRY_S,
                )  # fmt: skip
                self._loop.remove_reader(self.sock.fileno())
                self._loop.call_later(_RETRY_S, self._resume)
                return
            self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._connect(conn))  # kept: a task nobody holds may be collected
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:  # a client that left, or spoke no TLS
            log.debug("connection dropped before it began: %s", exc)
            conn.close()

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting (the socket itself is closed by its owner); cancel handshakes in progress."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self.sock.fileno())
        for task in self._starting:
            task.cancel()

    async def wait_closed(self) -> None:
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)
