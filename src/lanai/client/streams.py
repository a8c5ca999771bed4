"""Streamed answers: server-sent events parsed the way openai-python does, as sync and async iterators.

Events are separated by blank lines; ``data:`` lines make an event's data (several join with newlines);
lines starting with ``:`` are comments (keep-alives); other fields are ignored. ``data: [DONE]`` ends the
stream. Each event's JSON goes through the call's ``event`` decoder, which raises on an in-band error.
A stream that has begun is never retried: a connection lost mid-stream raises ConnectionFailed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import httpx

from lanai.client.errors import ProtocolError, connection_failed

__all__ = ["SSEDecoder", "Stream", "AsyncStream", "DONE"]

T = TypeVar("T")
DONE = object()
"""What :meth:`SSEDecoder.item` returns for ``[DONE]``."""


class SSEDecoder:
    """Turns lines (without their line ends) into event data."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def line(self, line: str) -> str | None:
        """Feed one line; the event's data when this blank line completes an event that has data."""
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def end(self) -> str | None:
        """The last event's data, if the stream ended without its blank line."""
        return self.line("")

    @staticmethod
    def item(data: str, event: Callable[[Any], T | None]) -> T | None | object:
        """DONE for ``[DONE]``, else the decoder's item (None: skip it)."""
        if data.startswith("[DONE]"):
            return DONE
        try:
            doc = json.loads(data)
        except ValueError:
            raise ProtocolError(f"a stream event is not JSON: {data[:120]!r}") from None
        return event(doc)


class Stream(Generic[T]):
    """The items of a streamed answer, as they arrive. Iterate it; ``close()`` it (or use ``with``) to
    stop early. It closes itself when the stream ends."""

    def __init__(self, response: httpx.Response, event: Callable[[Any], T | None], server: str) -> None:
        self.response = response
        self.server = server
        self._items = self._read(event)

    def _read(self, event: Callable[[Any], T | None]) -> Iterator[T]:
        decoder = SSEDecoder()
        try:
            for line in self.response.iter_lines():
                data = decoder.line(line)
                if data is None:
                    continue
                item = decoder.item(data, event)
                if item is DONE:
                    return
                if item is not None:
                    yield cast(T, item)
            data = decoder.end()
            if data is not None and (item := decoder.item(data, event)) is not None and item is not DONE:
                yield cast(T, item)
        except httpx.TransportError as exc:
            raise connection_failed(exc, self.server) from exc
        finally:
            self.response.close()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        self._items.close()  # type: ignore[attr-defined]
        self.response.close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncStream(Generic[T]):
    """:class:`Stream` for ``async for``; ``await aclose()`` (or ``async with``) to stop early."""

    def __init__(self, response: httpx.Response, event: Callable[[Any], T | None], server: str) -> None:
        self.response = response
        self.server = server
        self._items = self._read(event)

    async def _read(self, event: Callable[[Any], T | None]) -> AsyncIterator[T]:
        decoder = SSEDecoder()
        try:
            async for line in self.response.aiter_lines():
                data = decoder.line(line)
                if data is None:
                    continue
                item = decoder.item(data, event)
                if item is DONE:
                    return
                if item is not None:
                    yield cast(T, item)
            data = decoder.end()
            if data is not None and (item := decoder.item(data, event)) is not None and item is not DONE:
                yield cast(T, item)
        except httpx.TransportError as exc:
            raise connection_failed(exc, self.server) from exc
        finally:
            await self.response.aclose()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self._items.__anext__()

    async def aclose(self) -> None:
        await self._items.aclose()  # type: ignore[attr-defined]
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
