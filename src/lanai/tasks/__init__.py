"""The task registry: every task lanai serves, by name.

Adding a task is a module (see ``base.Task``) plus one line below. Routes, CLI choices, ``models add``
checks, pipelines and the OpenAPI document all read this table.
"""

from __future__ import annotations

from lanai.errors import BadInput
from lanai.tasks import chat, classify, classify_text, completion, detect, embed, embed_image, infer, ocr, redact
from lanai.tasks.base import Task

__all__ = ["TASKS", "get_task", "Task"]

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        classify.TASK,
        infer.TASK,
        chat.TASK,
        completion.TASK,
        embed.TASK,
        classify_text.TASK,
        embed_image.TASK,
        detect.TASK,
        ocr.TASK,
        redact.TASK,
    )
}


def get_task(name: str) -> Task:
    """The task called ``name``; BadInput lists the known ones."""
    task = TASKS.get(name)
    if task is None:
        raise BadInput(f"there is no task {name!r}.", hint=f"tasks: {', '.join(TASKS)}.")
    return task
