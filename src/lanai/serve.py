"""``lanai serve``: wire settings, store, host and HTTP server together and run until SIGTERM."""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["serve"]

log = logging.getLogger("lanai")


def serve(config_file: Path | None = None, cli: Mapping[str, Any] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; in-flight requests finish first (up to shutdown_timeout)."""
    from lanai.bundled import ensure_default_model
    from lanai.config import load_settings
    from lanai.host import Host
    from lanai.http.server import bind, build_server
    from lanai.store import Store

    settings = load_settings(config_file, cli)
    logging.getLogger().setLevel(settings.log_level.upper())
    store = Store(settings.home)
    ensure_default_model(store)
    host = Host(store, settings)
    server = build_server(host, settings)
    sock = bind(settings.host, settings.port)
    address, port = sock.getsockname()[:2]
    scheme = "https" if settings.tls_certfile else "http"
    shown = f"[{address}]" if ":" in address else address
    log.info("lanai listening on %s://%s:%d (store: %s)", scheme, shown, port, store.root)
    # uvicorn drains, then re-raises the signal it caught under the handler that was there before it;
    # a SIGTERM handler of our own makes a drained shutdown end with exit status 0, not "killed".
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run(sockets=[sock])
    return 0
