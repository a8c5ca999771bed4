"""The failover policy as pure logic, on a fake clock."""

from __future__ import annotations

import pytest

from lanai.client.failover import Attempts, Failure, Retry, RetryPolicy, ServerPool, normalize_url

A, B, C = "http://a:8000", "http://b:8000", "http://c:8000"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(*servers: str, **policy: float) -> tuple[ServerPool, Clock]:
    clock = Clock()
    return ServerPool(servers, RetryPolicy(**policy), clock), clock  # type: ignore[arg-type]


def test_urls_are_normalised_and_checked() -> None:
    assert normalize_url(" box:8000/ ") == "http://box:8000"
    assert normalize_url("https://box") == "https://box"
    with pytest.raises(ValueError, match="twice"):
        pool(A, A + "/")
    with pytest.raises(ValueError, match="at least one"):
        pool()
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_requests_rotate_over_healthy_servers() -> None:
    servers, clock = pool(A, B, C)
    assert [servers.choose(clock())[0] for _ in range(4)] == [A, B, C, A]


def test_a_failed_server_is_skipped_until_its_mark_ends_and_backs_off_exponentially() -> None:
    servers, clock = pool(A, B, backoff=0.5, down_max=3.0)
    for expected_hold in (0.5, 1.0, 2.0, 3.0, 3.0):  # doubles, capped by down_max
        servers.failed(A, clock())
        assert servers.available() == [B]
        clock.now += expected_hold - 0.01
        assert servers.available() == [B]
        clock.now += 0.01
        assert servers.available() == [A, B]
    servers.succeeded(A)
    servers.failed(A, clock())
    clock.now += 0.5
    assert servers.available() == [A, B]  # a success reset the backoff


def test_when_every_server_is_marked_the_one_free_soonest_is_chosen() -> None:
    servers, clock = pool(A, B)
    servers.failed(A, clock(), retry_after=5)
    servers.failed(B, clock(), retry_after=2)
    assert servers.choose(clock()) == (B, clock() + 2, True)


def test_an_unsent_request_fails_over_at_once_even_when_not_idempotent() -> None:
    servers, _ = pool(A, B)
    attempts = Attempts(servers, idempotent=False)
    first = attempts.first()
    assert attempts.failed(first, Failure.UNSENT) == Retry(B if first == A else A, 0.0)


def test_a_request_that_may_have_run_is_retried_only_when_idempotent() -> None:
    servers, _ = pool(A, B)
    assert Attempts(servers, idempotent=False).failed(A, Failure.SENT) is None
    assert Attempts(servers, idempotent=True).failed(A, Failure.SENT) == Retry(B, 0.0)


def test_retry_after_is_honoured_in_full() -> None:
    servers, clock = pool(A, max_backoff=0.5)
    attempts = Attempts(servers, idempotent=False)
    assert attempts.failed(A, Failure.BUSY, retry_after=3.0) == Retry(A, 3.0)


def test_a_lone_dead_server_is_retried_after_the_calls_capped_exponential_backoff() -> None:
    servers, clock = pool(A, backoff=0.1, max_backoff=0.25, down_max=30)
    attempts = Attempts(servers, idempotent=True)
    delays = []
    for _ in range(4):
        retry = attempts.failed(A, Failure.UNSENT)
        assert retry is not None
        delays.append(retry.delay)
        clock.now += retry.delay
    assert delays == pytest.approx([0.1, 0.2, 0.25, 0.25])


def test_attempts_are_capped() -> None:
    servers, clock = pool(A, B, attempts=3)
    attempts = Attempts(servers, idempotent=True)
    assert attempts.failed(A, Failure.UNSENT) is not None
    assert attempts.failed(B, Failure.UNSENT) is not None
    assert attempts.failed(A, Failure.UNSENT) is None


def test_no_wait_may_end_past_the_deadline() -> None:
    servers, clock = pool(A, deadline=10.0)
    attempts = Attempts(servers, idempotent=True)
    clock.now += 8.0
    assert attempts.remaining() == pytest.approx(2.0)
    assert attempts.failed(A, Failure.BUSY, retry_after=1.5) == Retry(A, 1.5)
    clock.now += 1.5
    assert attempts.failed(A, Failure.BUSY, retry_after=1.0) is None


def test_a_pinned_call_is_tried_once_on_its_server() -> None:
    servers, _ = pool(A, B)
    attempts = Attempts(servers, idempotent=True, pinned="b:8000/")
    assert attempts.first() == B
    assert attempts.failed(B, Failure.UNSENT) is None
    assert servers.available() == [A]  # it still marks the server it tried


def test_marks_are_shared_between_calls() -> None:
    servers, clock = pool(A, B)
    Attempts(servers, idempotent=True).failed(A, Failure.UNSENT)
    assert {Attempts(servers, idempotent=True).first() for _ in range(3)} == {B}


def test_the_default_deadline_follows_the_timeout() -> None:
    assert RetryPolicy().resolved(30.0).deadline == 60.0
    assert RetryPolicy().resolved(120.0).deadline == 240.0
    assert RetryPolicy().resolved(None).deadline == 60.0
    assert RetryPolicy(deadline=5).resolved(120.0).deadline == 5
