"""The admin API's operations (``http.admin``) in the OpenAPI document: ``openapi`` adds ``admin_paths()``
to its paths and ``ADMIN_BODIES`` to its schemas."""

from __future__ import annotations

from typing import Any

from lanai.http.openapi_schemas import ref
from lanai.protocol import admin
from lanai.protocol.wire import Wire

__all__ = ["admin_paths", "ADMIN_BODIES", "TAG"]

Doc = dict[str, Any]

TAG = ("admin", "Manage the box: models and their versions, optimisation reports, API keys, devices, TLS.")
ADMIN_BODIES: list[type[Wire]] = [
    admin.AdminModelList, admin.VersionReport, admin.ActivateRequest, admin.ActivateResult, admin.KeyList,
    admin.KeyRequest, admin.KeyCreated, admin.KeyRevoked, admin.DeviceList, admin.DeviceRevoked, admin.TlsInfo,
]  # fmt: skip
_ERROR = {"content": {"application/json": {"schema": ref("Error")}}}


def _json(description: str, schema: str) -> Doc:
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def _error(description: str) -> Doc:
    return {"description": description, **_ERROR}


def _path(name: str, description: str) -> Doc:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _op(op_id: str, summary: str, ok: Doc, errors: dict[int, str], *, status: int = 200, **fields: Any) -> Doc:
    responses = {str(status): ok, **{str(s): _error(d) for s, d in errors.items()}}
    return {"operationId": op_id, "tags": ["admin"], "summary": summary, **fields, "responses": responses}


def _body(schema: str, required: bool = True) -> Doc:
    return {"required": required, "content": {"application/json": {"schema": ref(schema)}}}


_MODEL = _path("model", "The model's name.")
_BAD_NAME = "Not a model name ([a-z0-9][a-z0-9._-]{0,63})."
_VERSION = _path("version", "The version, e.g. 2.")
_SWITCH = (
    "The version loads beside the one serving, which serves until it is ready and then drains: no request "
    "fails in the swap. A version that does not load changes nothing (the old one serves on and stays active) "
    "and answers 400 saying why."
)


def admin_paths() -> Doc:
    report = "/v1/admin/models/{model}/versions/{version}/report"
    no_report = "No such model or version, or it has no report."
    switched = _json("Active and serving.", "ActivateResult")
    return {
        "/v1/admin/models": {"get": _op(
            "AdminListModels", "Every model in the store, its versions and what the server serves",
            _json("Models by name, versions newest first.", "AdminModelList"), {})},
        report: {"get": _op(
            "AdminGetReport", "The optimisation report stored with a version",
            _json("Its Markdown and figures.", "VersionReport"), {400: _BAD_NAME, 404: no_report},
            parameters=[_MODEL, _VERSION])},
        report + ".png": {"get": _op(
            "AdminGetReportChart", "The chart of a version's optimisation report",
            {"description": "The chart.", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
            {400: _BAD_NAME, 404: no_report + " Or its report has no chart."}, parameters=[_MODEL, _VERSION])},
        "/v1/admin/models/{model}/activate": {"post": _op(
            "AdminActivateModel", "Activate a version and serve it", switched,
            {400: "Malformed, or the version did not load (the old one still serves).",
             404: "No such model or version.", 413: "The body is too large.", 503: "The server is starting."},
            description=_SWITCH, parameters=[_MODEL], requestBody=_body("ActivateRequest"))},
        "/v1/admin/models/{model}/rollback": {"post": _op(
            "AdminRollbackModel", "Go back to the version active before, and serve it", switched,
            {400: "No earlier version to go back to, or it did not load (the current one still serves).",
             404: "No such model.", 503: "The server is starting."},
            description="As lanai models rollback: an undo stack, twice goes back two steps. " + _SWITCH,
            parameters=[_MODEL])},
        "/v1/admin/keys": {
            "get": _op("AdminListKeys", "The API keys (never their secrets)", _json("Keys by name.", "KeyList"), {}),
            "post": _op("AdminCreateKey", "Make an API key", _json("The key, shown only here.", "KeyCreated"),
                        {400: "Malformed, or a name or rate that is not allowed.", 409: "A key of that name exists.",
                         413: "The body is too large."},
                        status=201, requestBody=_body("KeyRequest"),
                        description="It works at once on the running server (and on every door)."),
        },
        "/v1/admin/keys/{name}": {"delete": _op(
            "AdminRevokeKey", "Revoke an API key", _json("Revoked: refused from now on.", "KeyRevoked"),
            {404: "No key of that name."}, parameters=[_path("name", "The key's name.")])},
        "/v1/admin/devices": {"get": _op(
            "AdminListDevices", "The devices paired with the box (lanai pair)",
            _json("Devices by name.", "DeviceList"), {})},
        "/v1/admin/devices/{name}": {"delete": _op(
            "AdminRevokeDevice", "Revoke a paired device: its key and its certificate",
            _json("Revoked: refused from now on.", "DeviceRevoked"), {404: "No device paired under that name."},
            parameters=[_path("name", "The device's name.")])},
        "/v1/admin/tls": {"get": _op(
            "AdminGetTls", "The certificate the server serves", _json("Its fingerprint and expiry.", "TlsInfo"),
            {400: "The served certificate file cannot be read."})},
    }  # fmt: skip
