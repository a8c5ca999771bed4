"""What a task is: the contract each task module fulfils, and what it sees of a loaded model.

A task says what it accepts, which backends it fits, how one input becomes a row of model inputs (on
the batch thread), which rows may share a batch, how a finished batch becomes per-request rows (on the
batch thread, once per batch), and how those rows become its result, a wire value. Its parameters are a
wire value too, validated from their own field metadata (``minimum``, ``maximum``), so the schema that
the OpenAPI document publishes and the check the server makes are one and the same.

Tasks of language models (chat, completion, embed) run in the generation engine; their modules declare
the same facts and leave the batch hooks alone.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

import numpy as np

from lanai.errors import BadInput, ModelLoadError
from lanai.protocol.wire import Wire, doc
from lanai.types import ImagePreprocess, ModelInfo

__all__ = ["Task", "TaskModel", "Job", "RunTiming", "Timing", "NoParams", "parse_params", "wire_vector"]

P = TypeVar("P", bound=Wire)
R = TypeVar("R", bound=Wire)
Rows = dict[str, np.ndarray]


@dataclass(frozen=True)
class TaskModel:
    """What a task sees of a loaded tensor model."""

    info: ModelInfo
    labels: tuple[str, ...]
    preprocess: ImagePreprocess | None
    max_image_pixels: int
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The manifest's backend options: what ``models add --option`` recorded (e.g. a detector's decoder)."""
    files: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    """The version's other files by role, as paths in the store (e.g. ``tokenizer``, ``head``)."""


@dataclass(frozen=True)
class RunTiming:
    """Where one request's time went, in nanoseconds, as the data plane measured it."""

    started_ns: int
    """perf_counter_ns() when the data plane took the request."""
    prepare_ns: int
    """This request's own preparation (decoding its image)."""
    queue_ns: int
    """Waiting for its batch to start, and for the batch's other rows to be prepared."""
    compute_ns: int
    batch_size: int


@dataclass(frozen=True)
class Timing(Wire):
    """Where the time went, in milliseconds."""

    preprocess_ms: float = doc("Decoding and resizing the input.")
    queue_ms: float = doc("Waiting for a batch.")
    compute_ms: float = doc("Running the batch.")
    batch_size: int = doc("Rows in the batch this input ran in.")
    total_ms: float = doc("From the request's arrival at the data plane to its answer.")

    @classmethod
    def of(cls, run: RunTiming, now_ns: int) -> Timing:
        return cls(
            round(run.prepare_ns / 1e6, 3), round(run.queue_ns / 1e6, 3), round(run.compute_ns / 1e6, 3),
            run.batch_size, round((now_ns - run.started_ns) / 1e6, 3),
        )  # fmt: skip


@dataclass(frozen=True)
class NoParams(Wire):
    """The task takes no parameters."""


@dataclass
class Job(Generic[R]):
    """One request, as the batcher runs it."""

    prepare: Callable[[], Rows]
    """One row of model inputs (batch axis of 1), made on the batch thread."""
    key: Hashable
    """Jobs with equal keys make rows of the same shapes and share ``finish``: they may share a batch."""
    finish: Callable[[Rows], Rows] | None
    """The whole batch's outputs → the rows each request gets, on the batch thread (vectorised)."""
    result: Callable[[Rows, RunTiming], R | Awaitable[R]]
    """This request's rows → its answer, on the event loop (keep it cheap). It may be a coroutine function
    when the answer waits on work off the loop (redact awaits its rules, which ran on a worker thread)."""
    collate: Callable[[list[Rows]], Rows] | None = None
    """Joins the prepared rows of a batch's requests into its inputs, on the batch thread (e.g. token
    rows padded to the batch's longest). None: rows of equal shapes, concatenated. ``prepare`` may then
    make several rows (a long text's chunks); each request gets back as many rows as it made."""


class Task(Generic[P, R]):
    """One task. A module makes one instance, ``TASK``, and the registry lists it."""

    name: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[Literal["tensor", "language"]]
    accepts: ClassVar[Literal["image", "text", "tensors", "messages"]]
    """What a request carries: an encoded image, text, named tensors, or chat messages."""
    backends: ClassVar[tuple[str, ...]]
    params: type[P]
    result: type[R] | None = None

    def kind_on(self, backend: str) -> Literal["tensor", "language"]:
        """The kind of model this task is on ``backend`` (a task such as embed serves both)."""
        return self.kind

    @property
    def routed(self) -> bool:
        """Whether the task has its own endpoint (``POST /v1/models/{model}/{task}`` over HTTP)."""
        return self.kind == "tensor" and self.accepts in ("image", "text")

    def check(self, info: ModelInfo) -> None:
        """Raise ModelLoadError when a model with ``info`` cannot serve this task."""
        if info.backend not in self.backends:
            raise ModelLoadError(
                f"model {info.name!r} runs on backend {info.backend!r}, which cannot serve task {self.name!r}.",
                hint=f"task {self.name} runs on: {', '.join(self.backends)}.",
            )

    def job(self, model: TaskModel, data: Any, params: P) -> Job[R]:
        """The request ``data`` (what ``accepts`` says) with ``params``, ready for the batcher."""
        raise BadInput(f"task {self.name!r} has no endpoint of its own.")


def wire_vector(vector: Any) -> Sequence[float]:
    """A vector for a wire value's ``Sequence[float]`` field: kept as a contiguous float32 array, which
    the HTTP door writes with float32's shortest digits, instead of a tuple of Python floats."""
    return cast(Sequence[float], np.ascontiguousarray(vector, dtype=np.float32))


def parse_params(cls: type[P], raw: Mapping[str, Any], *, task: str) -> P:
    """``cls`` from ``raw``: JSON values, or the strings of a query string or form. A value of the wrong
    type, out of its field's ``minimum``/``maximum``, or an unknown name, is BadInput that says so."""
    if not raw:
        return cls()
    fields = _fields(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(fields) or "none"
        raise BadInput(
            f"task {task!r} has no parameter {', '.join(map(repr, unknown))}.", hint=f"its parameters: {known}."
        )
    return cls(**{name: _value(*fields[name], value) for name, value in raw.items()})


_FIELDS: dict[type, dict[str, tuple[dataclasses.Field, Any]]] = {}


def _fields(cls: Any) -> dict[str, tuple[dataclasses.Field, Any]]:
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}
    return found


def _value(f: dataclasses.Field, kind: Any, value: Any) -> Any:
    limits = f.metadata.get("schema", {})
    low, high = limits.get("minimum"), limits.get("maximum")
    span = f" from {low} to {high}" if low is not None and high is not None else ""
    example = f"{f.name}={f.default}" if f.default is not dataclasses.MISSING else f.name
    number: float | None
    if kind is int:
        text = str(value).strip() if not isinstance(value, bool) else ""
        number = int(text) if re.fullmatch(r"-?[0-9]+", text) else None  # not "²" or "--5": int() refuses them
        what = f"a whole number{span}"
    elif kind is float:
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        what = f"a number{span}"
    elif kind is bool:
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "false", "0", "no"):
            return text in ("true", "1", "yes")
        raise BadInput(f"{f.name} must be true or false, not {value!r}.", hint=f"use e.g. {f.name}=true.")
    else:
        return str(value)
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        raise BadInput(f"{f.name} must be {what}, not {value!r}.", hint=f"use e.g. {example}.")
    return number
