"""Error answers become the server's exception classes, with its message and hint."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

import lanai.errors
from lanai.client import errors
from lanai.client.errors import error_from_answer, retry_after


def lanai_body(text: str) -> bytes:
    return json.dumps({"error": text}).encode()


def openai_body(text: str, kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": text, "type": kind, "param": None, "code": None}}).encode()


@pytest.mark.parametrize("body", [lanai_body, openai_body])
@pytest.mark.parametrize(
    ("status", "message", "cls"),
    [
        (400, "the image is corrupt.", lanai.errors.BadInput),
        (413, "the request body is larger than 10 bytes.", lanai.errors.PayloadTooLarge),
        (404, "no model named 'x' is loaded.", lanai.errors.ModelNotFound),
        (404, "model 'm' has version 2 loaded, not '3'.", lanai.errors.VersionNotFound),
        (404, "model 'm' has no version '7'", lanai.errors.VersionNotFound),
        (409, "a key named 'desk' exists.", lanai.errors.Conflict),
        (503, "the model's queue is full (8 requests waiting).", lanai.errors.Overloaded),
        (429, "too many requests", lanai.errors.Overloaded),
        (503, "the model is being unloaded.", lanai.errors.NotReady),
        (503, "the server is starting or shutting down.", lanai.errors.NotReady),
        (401, "missing or wrong API key.", errors.Unauthorized),
        (403, "not allowed.", errors.Forbidden),
        (404, "no such endpoint: POST /v9/x.", errors.EndpointNotFound),
        (405, "GET is not allowed on /v1/chat/completions.", errors.EndpointNotFound),
        (500, "internal error (KeyError); the server log has the details.", errors.ServerError),
        (502, "bad gateway", errors.ServerError),
    ],
)
def test_statuses_map_to_the_error_tree(body, status: int, message: str, cls: type) -> None:  # type: ignore[no-untyped-def]
    error = error_from_answer(status, httpx.Headers(), body(message + " Hint: do this."))
    assert type(error) is cls
    assert error.message == message and error.hint == "do this."
    assert str(error) == f"{message} Hint: do this."


def test_overloaded_carries_retry_after() -> None:
    error = error_from_answer(503, httpx.Headers({"Retry-After": "4"}), lanai_body("queue is full"))
    assert isinstance(error, lanai.errors.Overloaded) and error.retry_after == 4.0


def test_a_body_that_is_not_lanais_is_quoted() -> None:
    error = error_from_answer(502, httpx.Headers(), b"<html>Bad Gateway</html>")
    assert isinstance(error, errors.ServerError) and error.status == 502
    assert error.message == "HTTP 502: <html>Bad Gateway</html>" and error.hint is None
    assert error_from_answer(500, httpx.Headers(), b"").message == "HTTP 500"


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert retry_after(httpx.Headers({"Retry-After": "0.5"})) == 0.5
    assert retry_after(httpx.Headers()) is None
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after(httpx.Headers({"Retry-After": later})) or 0) <= 30


def test_transport_failures_say_whether_the_request_was_sent() -> None:
    request = httpx.Request("GET", "http://a")
    refused = errors.connection_failed(httpx.ConnectError("refused", request=request), "http://a")
    assert not refused.sent and "cannot connect to http://a" in refused.message and refused.hint
    reset = errors.connection_failed(httpx.ReadError("reset", request=request), "http://a")
    assert reset.sent and reset.server == "http://a"
    timeout = errors.connection_failed(httpx.ReadTimeout("slow", request=request), "http://a")
    assert timeout.sent and "ReadTimeout" in timeout.message


def test_the_public_tree() -> None:
    assert issubclass(errors.ConnectionFailed, errors.ClientError)
    assert issubclass(errors.ClientError, lanai.errors.LanaiError)
    assert errors.BadInput is lanai.errors.BadInput  # one tree: in-process and remote code catch the same
    for name in errors.__all__:
        assert hasattr(errors, name)


def test_the_class_the_server_names_wins_over_the_message() -> None:
    from lanai.client.errors import error_from_answer
    from lanai.errors import NotReady, Overloaded, VersionNotFound

    body = b'{"error": "something else entirely. Hint: wait.", "kind": "NotReady"}'
    error = error_from_answer(503, {"retry-after": "1"}, body)
    assert type(error) is NotReady and error.hint == "wait."
    error = error_from_answer(503, {"retry-after": "4"}, b'{"error": "busy", "kind": "Overloaded"}')
    assert type(error) is Overloaded and error.retry_after == 4
    assert type(error_from_answer(404, {}, b'{"error": "gone", "kind": "VersionNotFound"}')) is VersionNotFound
    assert type(error_from_answer(404, {}, b'{"error": "no key named x", "kind": "NotFound"}')) is lanai.errors.NotFound
    openai_body = b'{"error": {"message": "warming up", "type": "server_error", "code": "not_ready"}}'
    assert type(error_from_answer(503, {}, openai_body)) is NotReady


def test_access_refusals_map_to_their_classes() -> None:
    from lanai.client.errors import Forbidden, Unauthorized, error_from_answer
    from lanai.errors import RateLimited

    limited = error_from_answer(429, {"retry-after": "3"}, b'{"error": "slow down", "kind": "RateLimited"}')
    assert type(limited) is RateLimited and limited.retry_after == 3
    assert type(error_from_answer(401, {}, b'{"error": "no", "kind": "Unauthenticated"}')) is Unauthorized
    assert type(error_from_answer(403, {}, b'{"error": "no", "kind": "PermissionDenied"}')) is Forbidden
