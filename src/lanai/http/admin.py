"""The admin API a console needs (``/v1/admin/...``): the models in the store and the version each
serves, switching versions on the running server, optimisation reports, API keys, paired devices and
the served certificate. Every route here needs an admin (``http.auth`` lists none of them).

The work is the core's: the store, ``dataplane.activation``, the key ring and ``security.certs``; these
handlers parse the request, call it off the event loop, and write the answer (``protocol.admin``).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lanai.dataplane import DataPlane
from lanai.dataplane.activation import activate_version, roll_back
from lanai.errors import BadInput, StoreError, VersionNotFound
from lanai.http.body import json_object, read_body
from lanai.http.json_response import JSONResponse
from lanai.protocol.admin import (
    ActivateRequest,
    ActivateResult,
    AdminModel,
    AdminModelList,
    AdminVersion,
    DeviceInfo,
    DeviceList,
    DeviceRevoked,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyRequest,
    KeyRevoked,
    ModelState,
    TlsInfo,
    VersionReport,
)
from lanai.protocol.wire import WireError
from lanai.security.certs import describe_certificate
from lanai.security.keys import ApiKey, KeyRing
from lanai.store import Manifest, ModelSummary

__all__ = ["routes"]

_BODY_LIMIT = 16 * 1024
# the roles an optimisation report's files have among a version's files (lanai.optimize.report.REPORT_FILES)
_REPORT_MD, _REPORT_JSON, _REPORT_PNG = "report_md", "report_json", "report_png"


def _plane(request: Request) -> DataPlane:
    return request.app.state.plane  # type: ignore[no-any-return]


def _iso(stamp: float | None) -> str | None:
    if not stamp:
        return None
    moment = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, _BODY_LIMIT)
    return json_object(raw) if raw.strip() else {}


# -- models --------------------------------------------------------------------------------------------


def _version_number(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise VersionNotFound(f"{text!r} is not a version number.", hint="versions are 1, 2, 3…")
    return int(text)


def _model_name(request: Request) -> str:
    name: str = request.path_params["model"]
    request.scope["lanai.model"] = name
    return name


def _describe_model(plane: DataPlane, summary: ModelSummary) -> AdminModel:
    store = plane.store
    versions, problems = [], [summary.problem] if summary.problem else []
    for number in reversed(summary.versions):
        try:
            manifest = store.manifest(summary.name, number)
        except StoreError as exc:
            problems.append(str(exc))
            continue
        size = sum(f.size for f in manifest.files.values())
        has_report = _REPORT_MD in manifest.files
        versions.append(
            AdminVersion(str(number), manifest.created, manifest.backend, size, number == summary.active, has_report)
        )
    loaded = plane.models.get(summary.name)
    state: ModelState
    if loaded is not None:
        state = "loaded"
    elif summary.name in plane.failed:
        state, problems = "failed", [plane.failed[summary.name], *problems]
    elif summary.active is not None and plane.residency.on_demand(summary.name):
        state = "available"
    else:
        state = "unloaded"
    active = None if summary.active is None else str(summary.active)
    serving = None if loaded is None else loaded.version
    error = " ".join(problems) or None
    return AdminModel(summary.name, summary.task, active, serving, state, versions, error)


async def list_models(request: Request) -> Response:
    plane = _plane(request)

    def describe_all() -> AdminModelList:
        return AdminModelList([_describe_model(plane, summary) for summary in plane.store.list()])

    return JSONResponse((await asyncio.to_thread(describe_all)).to_dict())


async def _report_manifest(request: Request) -> Manifest:
    name = _model_name(request)
    version = _version_number(request.path_params["version"])
    manifest = await asyncio.to_thread(_plane(request).store.manifest, name, version)
    if _REPORT_MD not in manifest.files:
        raise VersionNotFound(
            f"{name} version {version} has no optimisation report.",
            hint="lanai optimize stores one with the versions it makes; GET /v1/admin/models shows which have one.",
        )
    return manifest


async def report(request: Request) -> Response:
    manifest = await _report_manifest(request)
    store = _plane(request).store

    def read() -> VersionReport:
        markdown = store.file_path(manifest, _REPORT_MD).read_text(encoding="utf-8")
        figures: dict[str, Any] = {}
        if _REPORT_JSON in manifest.files:
            try:
                loaded = json.loads(store.file_path(manifest, _REPORT_JSON).read_bytes())
            except ValueError as exc:
                what = f"the report's figures of {manifest.name} version {manifest.version}"
                raise StoreError(f"{what} are not JSON: {exc}.", hint="run lanai optimize again.") from None
            figures = loaded if isinstance(loaded, dict) else {"figures": loaded}
        chart = _REPORT_PNG in manifest.files
        return VersionReport(manifest.name, str(manifest.version), markdown, figures, chart)

    return JSONResponse((await asyncio.to_thread(read)).to_dict())


async def report_chart(request: Request) -> Response:
    manifest = await _report_manifest(request)
    if _REPORT_PNG not in manifest.files:
        raise VersionNotFound(
            f"the report of {manifest.name} version {manifest.version} has no chart.",
            hint="lanai optimize draws one when matplotlib is installed (the optimize extra).",
        )
    path = await asyncio.to_thread(_plane(request).store.file_path, manifest, _REPORT_PNG)
    return Response(await asyncio.to_thread(path.read_bytes), media_type="image/png")


async def activate(request: Request) -> Response:
    name = _model_name(request)
    raw = await _json_body(request)
    if isinstance(raw.get("version"), int) and not isinstance(raw["version"], bool):
        raw["version"] = str(raw["version"])  # {"version": 2} means what {"version": "2"} does
    try:
        body = ActivateRequest.from_dict(raw)
    except WireError as exc:
        raise BadInput(f"the request is malformed: {exc}", hint='send {"version": "2"}.') from None
    plane = _plane(request)
    previous = plane.models.get(name)
    model = await activate_version(plane, name, _version_number(body.version))
    return JSONResponse(_switched(name, model.version, previous))


async def rollback(request: Request) -> Response:
    name = _model_name(request)
    plane = _plane(request)
    previous = plane.models.get(name)
    model = await roll_back(plane, name)
    return JSONResponse(_switched(name, model.version, previous))


def _switched(name: str, version: str, previous: Any) -> dict[str, Any]:
    return ActivateResult(name, version, version, None if previous is None else previous.version).to_dict()


# -- keys and devices ----------------------------------------------------------------------------------


def _ring(request: Request) -> KeyRing:
    """The ring the access gate checks keys with, so that a change counts at once; a new one without it."""
    guard = request.app.state.guard
    if guard is not None and guard.keys is not None:
        return guard.keys  # type: ignore[no-any-return]
    return KeyRing(_plane(request).settings.home)


def _key_info(key: ApiKey) -> KeyInfo:
    return KeyInfo(key.name, key.role, list(key.models), key.rate, _iso(key.created), _iso(key.expires),
                   _iso(key.last_used), key.concurrency, key.device)  # fmt: skip


async def list_keys(request: Request) -> Response:
    keys = await asyncio.to_thread(_ring(request).list)
    return JSONResponse(KeyList([_key_info(k) for k in sorted(keys, key=lambda k: k.name)]).to_dict())


async def create_key(request: Request) -> Response:
    try:
        body = KeyRequest.from_dict(await _json_body(request))
    except WireError as exc:
        example = '{"name": "front-desk", "role": "infer"}'
        raise BadInput(f"the request is malformed: {exc}", hint=f"send e.g. {example}.") from None
    if body.rate is not None and not math.isfinite(body.rate):
        raise BadInput(f"rate {body.rate} is not a number of requests per second.", hint="e.g. 20, or null.")
    models = [m.strip() for m in body.models if m.strip()]
    text = await asyncio.to_thread(_ring(request).create, body.name, body.role, models=models, rate=body.rate)
    return JSONResponse(KeyCreated(body.name, body.role, text).to_dict(), 201)


async def revoke_key(request: Request) -> Response:
    name: str = request.path_params["name"]
    await asyncio.to_thread(_ring(request).revoke, name)
    return JSONResponse(KeyRevoked(name, True).to_dict())


async def list_devices(request: Request) -> Response:
    keys = await asyncio.to_thread(_ring(request).list)
    devices = [
        DeviceInfo(k.name, k.role, k.certificate, _iso(k.created), _iso(k.expires), list(k.models), _iso(k.last_used))
        for k in sorted(keys, key=lambda k: k.name)
        if k.device
    ]
    return JSONResponse(DeviceList(devices).to_dict())


async def revoke_device(request: Request) -> Response:
    name: str = request.path_params["name"]
    await asyncio.to_thread(functools.partial(_ring(request).revoke, name, device=True))  # its certificate too
    return JSONResponse(DeviceRevoked(name, True).to_dict())


# -- TLS -----------------------------------------------------------------------------------------------


async def tls(request: Request) -> Response:
    settings = _plane(request).settings
    mtls = settings.tls_client_ca is not None
    if settings.tls_certfile is None:
        return JSONResponse(TlsInfo(False, None, None, None, None, mtls).to_dict())
    cert = await asyncio.to_thread(describe_certificate, settings.tls_certfile)
    left = cert.not_after - datetime.datetime.now(datetime.timezone.utc)
    info = TlsInfo(True, cert.fingerprint, cert.subject, cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), left.days,
                   mtls, cert.issuer)  # fmt: skip
    return JSONResponse(info.to_dict())


def routes() -> list[Route]:
    version = "/v1/admin/models/{model}/versions/{version}"
    return [
        Route("/v1/admin/models", list_models, methods=["GET"]),
        Route(version + "/report", report, methods=["GET"]),
        Route(version + "/report.png", report_chart, methods=["GET"]),
        Route("/v1/admin/models/{model}/activate", activate, methods=["POST"]),
        Route("/v1/admin/models/{model}/rollback", rollback, methods=["POST"]),
        Route("/v1/admin/keys", list_keys, methods=["GET"]),
        Route("/v1/admin/keys", create_key, methods=["POST"]),
        Route("/v1/admin/keys/{name}", revoke_key, methods=["DELETE"]),
        Route("/v1/admin/devices", list_devices, methods=["GET"]),
        Route("/v1/admin/devices/{name}", revoke_device, methods=["DELETE"]),
        Route("/v1/admin/tls", tls, methods=["GET"]),
    ]
