"""The completion task: a text in, its continuation out, on a language model (no chat template)."""

from __future__ import annotations

from lanai.tasks.base import NoParams, Task

__all__ = ["TASK"]


class Completion(Task[NoParams, NoParams]):
    name = "completion"
    summary = "Continue a text"
    kind = "language"
    accepts = "text"
    backends = ("llamacpp",)
    params = NoParams


TASK = Completion()
