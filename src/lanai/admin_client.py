"""The command line's own client of this box's running server, with admin rights (``lanai pair``,
``lanai drain``): as a client on this machine, with the first-run admin key when there is one, and under
mTLS with a certificate of its own."""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx

from lanai.config import Settings
from lanai.errors import ConfigError
from lanai.security.certs import TlsFiles, issue_client

__all__ = ["AdminClient", "call"]

_CLI_CERT = "lanai-cli"
"""The admin client certificate the command line makes for itself on a box that requires them (mTLS)."""


class AdminClient:
    """An HTTP client for this box's running server with admin rights: as a client on this machine,
    with the first-run admin key when there is one, and under mTLS with a certificate of its own."""

    def __init__(self, settings: Settings, url: str | None) -> None:
        self.settings = settings
        self.url = url

    def __enter__(self) -> tuple[httpx.Client, str]:
        files = TlsFiles.of(self.settings.home)
        key_file = self.settings.home / "keys" / "admin.key"
        headers = {}
        key = os.environ.get("LANAI_API_KEY") or (key_file.read_text().strip() if key_file.is_file() else None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        verify: ssl.SSLContext | bool = True
        if files.ca_cert.is_file():
            verify = ssl.create_default_context(cafile=str(files.ca_cert))
            verify.check_hostname = False  # this box's own CA, on this box
            if files.ca_key.is_file():
                cert, cert_key = files.client(_CLI_CERT, ".pem"), files.client(_CLI_CERT, ".key")
                if not cert.is_file():
                    issue_client(files, _CLI_CERT, "admin")
                verify.load_cert_chain(str(cert), str(cert_key))
        self.http = httpx.Client(verify=verify, headers=headers, timeout=30)
        self.base = self._find()
        return self.http, self.base

    def _find(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        port = self.settings.port
        for scheme in ("https", "http"):
            base = f"{scheme}://127.0.0.1:{port}"
            try:
                self.http.get(base + "/v2/health/live")
            except (httpx.TransportError, ssl.SSLError):
                continue
            return base
        raise ConfigError(
            f"no lanai server answers on 127.0.0.1:{port}.", hint="start it (lanai serve), or pass --url."
        )

    def __exit__(self, *exc: object) -> None:
        self.http.close()


def call(http: httpx.Client, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The server's JSON answer; its refusal as the client library's error (message and hint included)."""
    from lanai.client.errors import error_from_answer

    response = http.request(method, url, json=body)
    if response.status_code >= 400:
        raise error_from_answer(response.status_code, response.headers, response.content)
    return response.json() if response.content else {}  # type: ignore[no-any-return]
