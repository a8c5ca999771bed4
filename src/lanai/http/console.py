"""The box's web console: the pages at ``/`` and ``/ui/…``, and the interactive API reference at ``/docs``.

Static files only. The pages are plain HTML, CSS and JavaScript shipped in the package (``lanai/console/``);
the API reference is Swagger UI's own distribution, taken from the ``swagger-ui-py`` package. Nothing is
loaded from the internet. The pages hold no data: the browser calls the API with the caller's key (kept in
the tab's ``sessionStorage`` only), so the pages are public and every figure on them obeys the API's own
access rules. Each file is read and gzipped once, and answered with an ETag (304 when the browser has it).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["routes", "PAGES"]

PAGES = ("status", "try", "models", "security")
"""The console's pages (``/ui/<page>``); ``/`` is the status page."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
_SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE")
"""What the API reference needs of Swagger UI's distribution (the package ships the editor too)."""
_SECURITY_HEADERS = {
    # the pages' own scripts and styles only; Swagger UI sets style attributes, and images may be blobs
    # (a chart fetched with the key) or data: URLs
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str
    cache_control: str


def _asset(body: bytes, name: str, cache_control: str) -> Asset:
    media_type = _TYPES.get(Path(name).suffix, "application/octet-stream")
    small_gain = len(body) < 1024 or media_type == "image/png"
    packed = None if small_gain else gzip.compress(body, compresslevel=9, mtime=0)
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, packed, media_type, etag, cache_control)


_KEPT: dict[str, Asset] = {}
"""The console's files read so far (only files that exist: the names come from requests)."""


def console_asset(name: str) -> Asset | None:
    """A file of the console's own (``lanai/console/``), or None."""
    if name in _KEPT:
        return _KEPT[name]
    if "/" in name or "\\" in name or name.startswith(".") or name.endswith(".py"):
        return None
    found = resources.files("lanai.console") / name
    if not found.is_file():
        return None
    # the pages revalidate (a new lanai shows at once); a revalidation costs a 304 and no body
    asset = _KEPT[name] = _asset(found.read_bytes(), name, "no-cache")
    return asset


@cache
def swagger_folder() -> Path | None:
    """Swagger UI's distribution in the swagger-ui-py package (found without importing the package, whose
    framework handlers need other libraries)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def swagger_asset(name: str) -> Asset | None:
    if name not in _SWAGGER_FILES:
        return None
    return _swagger_file(name)


@cache  # a few known names only
def _swagger_file(name: str) -> Asset | None:
    folder = swagger_folder()
    if folder is None:
        return None
    return _asset((folder / name).read_bytes(), name if "." in name else name + ".txt", "no-cache")


def _answer(request: Request, asset: Asset) -> Response:
    headers = {"etag": asset.etag, "cache-control": asset.cache_control, "vary": "accept-encoding"}
    if asset.media_type.startswith("text/html"):
        headers.update(_SECURITY_HEADERS)
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _page() -> Asset:
    asset = console_asset("index.html")
    assert asset is not None, "the console's index.html is missing from the package"
    return asset


async def home(request: Request) -> Response:
    return _answer(request, _page())


async def page(request: Request) -> Response:
    name = request.path_params["page"]
    if name not in PAGES:
        raise HTTPException(404)
    return _answer(request, _page())


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    found = console_asset(name)
    if found is None:
        raise HTTPException(404)
    return _answer(request, found)


async def swagger(request: Request) -> Response:
    name = request.path_params["name"]
    found = swagger_asset(name)
    if found is None:
        raise HTTPException(404)
    return _answer(request, found)


async def docs(request: Request) -> Response:
    """The interactive API reference: Swagger UI over /openapi.json, with the console's key."""
    found = console_asset("docs.html")
    assert found is not None, "the console's docs.html is missing from the package"
    return _answer(request, found)


def routes() -> list[Route]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/ui/{page}", page, methods=["GET"]),
        Route("/ui/assets/{name}", asset, methods=["GET"]),
        Route("/ui/swagger-ui/{name}", swagger, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
