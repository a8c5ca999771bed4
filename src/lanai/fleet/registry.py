"""A client of the OCI distribution API (what docker-registry, Harbor, Zot, GHCR and ECR serve): blobs
and manifests, pushed and fetched over httpx, with Basic and Bearer-token authentication.

Written here rather than taken from ORAS's Python SDK: a pull must check every byte against its digest
while it streams and stop at the declared size (oras-py writes the blob to disk as it comes), and it must
speak through the same httpx, certificates and errors as the rest of lanai. The API is small and
specified: https://github.com/opencontainers/distribution-spec (pull, push and the token flow).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from lanai.errors import RegistryError
from lanai.fleet.reference import Reference

__all__ = ["RegistryClient", "Credentials", "Fetched", "docker_credentials", "sha256_digest", "PASSWORD_ENV"]

log = logging.getLogger(__name__)

PASSWORD_ENV = "LANAI_REGISTRY_PASSWORD"
"""Where the command line and the channel follower read the registry password of ``--username``."""
MAX_MANIFEST_BYTES = 4 * 2**20
"""The registries' own limit for a manifest; anything larger is refused unread."""
_CHUNK = 1 << 20
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class Fetched:
    """A manifest as the registry sent it: its exact bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryError(f"the manifest {self.digest} is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise RegistryError(f"the manifest {self.digest} is not a JSON object")
        return value


def docker_credentials(registry: str, config: Path | None = None) -> Credentials | None:
    """The login ``docker login`` (or ``oras login``) saved for ``registry`` in ``~/.docker/config.json``
    (``$DOCKER_CONFIG``), if it is stored there in the clear; credential helpers are not run."""
    if config is None:
        config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auths = json.loads(config.read_text(encoding="utf-8")).get("auths", {})
    except (OSError, ValueError, AttributeError):
        return None
    entry = auths.get(registry) or auths.get(f"https://{registry}") or auths.get(f"http://{registry}")
    if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
        return None
    try:
        username, _, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return Credentials(username, password) if username else None


class RegistryClient:
    """One registry (``host[:port]``): HTTPS unless ``plain_http``, checked against ``ca_file`` (else the
    system's trust store via certifi), authenticated with ``credentials`` when the registry asks."""

    def __init__(
        self,
        registry: str,
        *,
        plain_http: bool = False,
        ca_file: Path | None = None,
        credentials: Credentials | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.registry = registry
        self.base = f"{'http' if plain_http else 'https'}://{registry}"
        self._credentials = credentials
        self._authorization: dict[str, str] = {}  # scope → header value
        verify: Any = True
        if ca_file is not None:
            import ssl

            verify = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.Client(timeout=timeout, verify=verify, follow_redirects=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- manifests ------------------------------------------------------------------------------------

    def get_manifest(self, ref: Reference, accept: tuple[str, ...]) -> Fetched:
        """The manifest ``ref`` points at; by digest, its bytes are checked against it."""
        url = f"{self.base}/v2/{ref.repository}/manifests/{ref.ref}"
        with self._stream("GET", url, ref.repository, "pull", headers={"Accept": ", ".join(accept)}) as answer:
            if answer.status_code == 404:
                raise RegistryError(
                    f"{ref} is not in the registry.", hint="check the repository and tag (lanai push publishes one)."
                )
            self._raise_for(answer, f"fetch the manifest of {ref}")
            data = self._read_capped(answer, MAX_MANIFEST_BYTES, f"the manifest of {ref}")
            media_type = answer.headers.get("content-type", "").split(";")[0].strip()
        digest = sha256_digest(data)
        if ref.digest is not None and digest != ref.digest:
            raise RegistryError(
                f"the registry answered {ref} with a manifest whose digest is {digest}.",
                hint="the registry is damaged or not the one you meant; nothing was pulled.",
            )
        return Fetched(data, media_type, digest)

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> str:
        """Publish a manifest under ``ref`` (a tag); returns its digest."""
        url = f"{self.base}/v2/{repository}/manifests/{ref}"
        answer = self._send("PUT", url, repository, "push,pull", content=data, headers={"Content-Type": media_type})
        self._raise_for(answer, f"publish {repository}:{ref}")
        digest = sha256_digest(data)
        given = answer.headers.get("docker-content-digest")
        if given and given != digest:
            raise RegistryError(f"the registry stored the manifest as {given}, not {digest}.")
        return digest

    # -- blobs ----------------------------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        answer = self._send("HEAD", f"{self.base}/v2/{repository}/blobs/{digest}", repository, "pull")
        if answer.status_code == 404:
            return False
        self._raise_for(answer, f"look up blob {digest}")
        return True

    def push_blob(self, repository: str, digest: str, size: int, source: Path | bytes) -> bool:
        """Upload one blob (monolithically) unless the registry has it; True if it was sent."""
        if self.has_blob(repository, digest):
            return False
        start = self._send("POST", f"{self.base}/v2/{repository}/blobs/uploads/", repository, "push,pull")
        self._raise_for(start, "start an upload")
        location = start.headers.get("location")
        if not location:
            raise RegistryError("the registry started an upload but said nowhere to send it (no Location).")
        url = httpx.URL(self.base).join(location)
        url = url.copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if isinstance(source, bytes):
            answer = self._send("PUT", str(url), repository, "push,pull", content=source, headers=headers)
        else:
            with source.open("rb") as stream:
                answer = self._send("PUT", str(url), repository, "push,pull", content=_chunks(stream), headers=headers)
        self._raise_for(answer, f"upload blob {digest}")
        return True

    def fetch_blob(self, repository: str, digest: str, size: int, out: IO[bytes]) -> None:
        """Write blob ``digest`` into ``out``, checking every byte as it streams: more than ``size``
        bytes, fewer, or other bytes than the digest says raise RegistryError (``out`` then holds a
        partial copy, which the caller throws away)."""
        algorithm, _, expected = digest.partition(":")
        if algorithm != "sha256":
            raise RegistryError(f"blob {digest} uses {algorithm!r}; lanai reads sha256 digests only.")
        url = f"{self.base}/v2/{repository}/blobs/{digest}"
        hasher, received = hashlib.sha256(), 0
        with self._stream("GET", url, repository, "pull") as answer:
            self._raise_for(answer, f"fetch blob {digest}")
            try:
                for chunk in answer.iter_bytes(_CHUNK):
                    received += len(chunk)
                    if received > size:
                        raise RegistryError(f"blob {digest} is longer than the {size} bytes its manifest declares.")
                    hasher.update(chunk)
                    out.write(chunk)
            except httpx.HTTPError as exc:
                raise RegistryError(
                    f"the download of blob {digest} broke off after {received} of {size} bytes: {exc}",
                    hint="the network or the registry dropped it; pull again.",
                ) from None
        if received != size:
            raise RegistryError(
                f"blob {digest} ended after {received} of {size} bytes.", hint="the download was cut; pull again."
            )
        if hasher.hexdigest() != expected:
            raise RegistryError(
                f"blob {digest} arrived with other bytes (sha256 {hasher.hexdigest()}).",
                hint="the registry or the network damaged it; nothing was imported.",
            )

    # -- HTTP and authentication ----------------------------------------------------------------------

    def _send(self, method: str, url: str, repository: str, actions: str, **kwargs: Any) -> httpx.Response:
        answer = self._request(method, url, repository, actions, stream=False, **kwargs)
        assert isinstance(answer, httpx.Response)
        return answer

    def _stream(self, method: str, url: str, repository: str, actions: str, **kwargs: Any) -> _Streamed:
        return _Streamed(self, method, url, repository, actions, kwargs)

    def _request(
        self, method: str, url: str, repository: str, actions: str, *, stream: bool, **kwargs: Any
    ) -> httpx.Response:
        scope = f"repository:{repository}:{actions}"
        headers = dict(kwargs.pop("headers", None) or {})
        for attempt in range(2):
            if scope in self._authorization:
                headers["Authorization"] = self._authorization[scope]
            try:
                request = self._http.build_request(method, url, headers=headers, **kwargs)
                answer = self._http.send(request, stream=stream)
            except httpx.ConnectError as exc:
                raise RegistryError(
                    f"cannot reach the registry {self.registry}: {exc}",
                    hint=_connect_hint(self.base, exc),
                ) from None
            except httpx.HTTPError as exc:
                raise RegistryError(f"the registry {self.registry} did not answer: {exc}") from None
            if answer.status_code != 401 or attempt == 1:
                return answer
            challenge = answer.headers.get("www-authenticate", "")
            answer.close()
            self._authorization[scope] = self._authorize(challenge, scope)
        raise AssertionError("unreachable")

    def _authorize(self, challenge: str, scope: str) -> str:
        """The Authorization header the registry's 401 challenge asks for."""
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "basic":
            if self._credentials is None:
                raise _needs_credentials(self.registry)
            pair = f"{self._credentials.username}:{self._credentials.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if kind != "bearer":
            raise RegistryError(f"the registry {self.registry} asks for {challenge!r}, which lanai does not speak.")
        params: Mapping[str, str] = dict(_CHALLENGE.findall(challenge))
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"the registry {self.registry} asks for a token but names no realm.")
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        auth = None if self._credentials is None else (self._credentials.username, self._credentials.password)
        try:
            answer = self._http.get(realm, params=query, auth=auth)
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot reach the registry's token service {realm}: {exc}") from None
        if answer.status_code in (401, 403):
            raise _needs_credentials(self.registry)
        self._raise_for(answer, "get a token")
        try:
            body = answer.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str):
            raise RegistryError(f"the token service {realm} answered without a token.")
        return f"Bearer {token}"

    def _raise_for(self, answer: httpx.Response, doing: str) -> None:
        if answer.status_code < 400:
            return
        if answer.status_code == 401:
            raise _needs_credentials(self.registry)
        if answer.status_code == 403:
            raise RegistryError(
                f"the registry {self.registry} refused to let these credentials {doing}.",
                hint="the account may read but not write this repository, or not see it at all.",
            )
        detail = _registry_errors(answer)
        raise RegistryError(f"the registry {self.registry} could not {doing}: {answer.status_code} {detail}".rstrip())

    @staticmethod
    def _read_capped(answer: httpx.Response, cap: int, what: str) -> bytes:
        data = bytearray()
        try:
            for chunk in answer.iter_bytes():
                data += chunk
                if len(data) > cap:
                    raise RegistryError(f"{what} is larger than {cap} bytes; lanai does not read it.")
        except httpx.HTTPError as exc:
            raise RegistryError(f"{what} broke off: {exc}", hint="pull again.") from None
        return bytes(data)


class _Streamed:
    """``with client._stream(...) as answer``: a streamed answer that is always closed."""

    def __init__(
        self, client: RegistryClient, method: str, url: str, repository: str, actions: str, kwargs: dict[str, Any]
    ) -> None:
        self._args = (method, url, repository, actions)
        self._kwargs = kwargs
        self._client = client
        self._answer: httpx.Response | None = None

    def __enter__(self) -> httpx.Response:
        self._answer = self._client._request(*self._args, stream=True, **self._kwargs)
        if self._answer.status_code >= 400:
            self._answer.read()
        return self._answer

    def __exit__(self, *exc: object) -> None:
        if self._answer is not None:
            self._answer.close()


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _registry_errors(answer: httpx.Response) -> str:
    """The messages of the registry's error body (``{"errors": [{"code", "message"}]}``), if any."""
    try:
        errors = answer.json().get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        return answer.reason_phrase


def _needs_credentials(registry: str) -> RegistryError:
    return RegistryError(
        f"the registry {registry} needs credentials, or refused the ones given.",
        hint="pass --username with the password in LANAI_REGISTRY_PASSWORD, or log in with docker or oras "
        "(~/.docker/config.json is read).",
    )


def _connect_hint(base: str, exc: Exception) -> str:
    text = str(exc).lower()
    if "certificate" in text or "ssl" in text:
        return (
            "the registry's certificate is not trusted: give its CA with --ca-file, or --plain-http if it has no TLS."
        )
    if base.startswith("https") and ("wrong version" in text or "record layer" in text):
        return "the registry speaks plain HTTP: add --plain-http."
    return "check the host and port, and that the registry is running."
