from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench_testservers import AppServer, AppState, RawServer, UvicornThread, make_app


@pytest.fixture(scope="module")
def _app_server() -> Iterator[AppServer]:
    state = AppState()
    server = UvicornThread(make_app(state))
    try:
        yield AppServer(server.url, state)
    finally:
        server.close()


@pytest.fixture
def app_server(_app_server: AppServer) -> AppServer:
    """The Starlette app under uvicorn, with its record of requests cleared."""
    _app_server.state.clear()
    return _app_server


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    """A hand-written HTTP server for odd responses; fresh per test."""
    server = RawServer()
    try:
        yield server
    finally:
        server.close()
