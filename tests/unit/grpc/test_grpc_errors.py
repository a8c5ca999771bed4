"""lanai's errors → gRPC status codes, details and retry trailers (decoded here with protobuf alone)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2, empty_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

from lanai.errors import (
    BackendUnavailable,
    BadInput,
    ConfigError,
    Conflict,
    InvalidName,
    LanaiError,
    ModelLoadError,
    ModelNotFound,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    StoreError,
    Unauthenticated,
    VersionNotFound,
)
from lanai.grpc.errors import RETRY_INFO_TYPE, STATUS_DETAILS_KEY, code_of, rpc_error

Code = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Unauthenticated("x"), Code.UNAUTHENTICATED),
        (PermissionDenied("x"), Code.PERMISSION_DENIED),
        (RateLimited("x"), Code.RESOURCE_EXHAUSTED),
        (BadInput("x"), Code.INVALID_ARGUMENT),
        (InvalidName("x"), Code.INVALID_ARGUMENT),
        (PayloadTooLarge("x"), Code.RESOURCE_EXHAUSTED),
        (ModelNotFound("x"), Code.NOT_FOUND),
        (VersionNotFound("x"), Code.NOT_FOUND),
        (NotFound("x"), Code.NOT_FOUND),
        (Conflict("x"), Code.ALREADY_EXISTS),
        (Overloaded("x"), Code.RESOURCE_EXHAUSTED),
        (NotReady("x"), Code.UNAVAILABLE),
        (ModelLoadError("x"), Code.FAILED_PRECONDITION),
        (StoreError("x"), Code.FAILED_PRECONDITION),
        (ConfigError("x"), Code.FAILED_PRECONDITION),
        (BackendUnavailable("x"), Code.FAILED_PRECONDITION),
        (LanaiError("x"), Code.FAILED_PRECONDITION),
    ],
)
def test_codes(error: LanaiError, code: grpc.StatusCode) -> None:
    assert code_of(error) is code


def fields(data: bytes) -> dict[int, list]:
    """A message's fields by number, read without knowing its type."""
    found: dict[int, list] = {}
    for field in UnknownFieldSet(empty_pb2.Empty.FromString(data)):
        found.setdefault(field.field_number, []).append(field.data)
    return found


def test_a_full_queue_carries_retry_info() -> None:
    error = rpc_error(Overloaded("the queue is full.", hint="retry later.", retry_after=1.25))
    assert error.code is Code.RESOURCE_EXHAUSTED and error.details == "the queue is full. Hint: retry later."
    trailers = dict(error.trailing_metadata)
    assert trailers["retry-after"] == "2"
    status = fields(trailers[STATUS_DETAILS_KEY])  # google.rpc.Status
    assert status[1] == [Code.RESOURCE_EXHAUSTED.value[0]] and status[2] == [error.details.encode()]
    detail = any_pb2.Any.FromString(status[3][0])
    assert detail.type_url == RETRY_INFO_TYPE
    delay = duration_pb2.Duration.FromString(fields(detail.value)[1][0])  # RetryInfo.retry_delay
    assert (delay.seconds, delay.nanos) == (1, 250_000_000)


def test_a_key_over_its_rate_carries_retry_info() -> None:
    error = rpc_error(RateLimited("key 'slow' is limited to 1 requests per second.", retry_after=0.4))
    assert error.code is Code.RESOURCE_EXHAUSTED
    trailers = dict(error.trailing_metadata)
    assert trailers["retry-after"] == "1"
    detail = any_pb2.Any.FromString(fields(trailers[STATUS_DETAILS_KEY])[3][0])
    delay = duration_pb2.Duration.FromString(fields(detail.value)[1][0])
    assert (detail.type_url, delay.seconds, delay.nanos) == (RETRY_INFO_TYPE, 0, 400_000_000)


def test_refusals_say_how_to_send_a_key_as_metadata_and_which_right_is_missing() -> None:
    missing = rpc_error(Unauthenticated("this needs an admin key.", hint="send the header 'Authorization: …'."))
    assert missing.details == (
        "this needs an admin key. Hint: send the metadata 'authorization: Bearer <key>' (or 'x-api-key: <key>'); "
        "lanai keys create makes one."
    )
    assert missing.trailing_metadata == ()
    denied = rpc_error(PermissionDenied("key 'desk' has role infer; this needs an admin key."))
    assert denied.details == "key 'desk' has role infer; this needs an admin key." and denied.trailing_metadata == ()


def test_not_ready_retries_in_a_second_and_bad_input_not_at_all() -> None:
    assert dict(rpc_error(NotReady("starting.")).trailing_metadata)["retry-after"] == "1"
    bad = rpc_error(BadInput("input 'x' is missing.", hint="send x."))
    assert bad.trailing_metadata == () and bad.details == "input 'x' is missing. Hint: send x."


def test_a_language_model_asked_for_tensors_is_pointed_to_the_http_door() -> None:
    from lanai.errors import WrongTask
    from lanai.grpc.errors import rpc_error

    error = rpc_error(WrongTask("model 'smol' is a chat model; it takes text, not tensors.", model="smol", task="chat"))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details.endswith("Hint: its chat requests go to the HTTP door (the OpenAI-compatible API).")
