"""What ``lanai doctor`` finds on a box: ``lanai doctor --json`` prints it, and a server started with
``doctor_at_start`` shows its summary in ``/health``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lanai.protocol.wire import Wire, doc

__all__ = ["CheckStatus", "DoctorCheck", "ModelBenchmark", "DoctorReport", "DoctorSummary", "Verdict", "verdict"]

CheckStatus = Literal["ok", "warn", "fail", "skip"]
Verdict = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class DoctorCheck(Wire):
    """One check, as one line."""

    name: str = doc("What was checked, e.g. governor, temperature, port.")
    status: CheckStatus = doc("ok; warn: works, but worse than it could; fail: broken; skip: not available here.")
    message: str = doc("What was found.")
    fix: str | None = doc("For warn and fail: what to do, in one line.", default=None, omit_none=True)

    def line(self) -> str:
        """``warn governor: … — fix: …``, as printed and as summarised in ``/health``."""
        text = f"{self.status} {self.name}: {self.message}"
        return f"{text} — fix: {self.fix}" if self.fix else text


@dataclass(frozen=True)
class ModelBenchmark(Wire):
    """Single requests at batch 1 on one of the store's active models, loaded as the server loads it."""

    model: str = doc("The model's name.")
    version: int = doc("Its active version.")
    task: str = doc("What it does.")
    backend: str = doc("The runtime, e.g. onnx.")
    execution_provider: str | None = doc("Where it ran; null if it did not load.")
    runs: int = doc("Requests timed (after warm-up); 0 when skipped or failed.")
    p50_ms: float | None = doc("Median milliseconds per request; null when not measured.")
    p95_ms: float | None = doc("95th percentile milliseconds per request; null when not measured.")
    note: str | None = doc("What one request was, or why it was not measured.", default=None, omit_none=True)


@dataclass(frozen=True)
class DoctorReport(Wire):
    """The box's self-test."""

    status: Verdict = doc("fail if a check failed, warn if one warned, else ok (skipped checks do not count).")
    version: str = doc("The lanai version.")
    checks: tuple[DoctorCheck, ...] = doc("Every check, in the order run.")
    runtimes: dict[str, str] = doc("Versions of Python and the runtimes installed.")
    providers: tuple[str, ...] = doc("ONNX Runtime execution providers in this build.")
    interfaces: dict[str, tuple[str, ...]] = doc("Network interfaces that are up, with their addresses.")
    benchmarks: tuple[ModelBenchmark, ...] = doc("One per active model; empty with --quick.")

    def summary(self, at: float) -> DoctorSummary:
        problems = tuple(c.line() for c in self.checks if c.status in ("warn", "fail"))
        return DoctorSummary(self.status, problems, at)


@dataclass(frozen=True)
class DoctorSummary(Wire):
    """``lanai doctor --quick`` as run when the server started (setting ``doctor_at_start``)."""

    status: Verdict = doc("As in ``lanai doctor``: ok, warn or fail.")
    problems: tuple[str, ...] = doc("The warn and fail lines, each with its fix.")
    checked_at: float = doc("When it ran (seconds since the epoch).")


def verdict(checks: tuple[DoctorCheck, ...]) -> Verdict:
    """The worst status among ``checks`` (skip counts as ok)."""
    statuses = {c.status for c in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"
