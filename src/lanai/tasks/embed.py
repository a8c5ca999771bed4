"""The embed task: texts in, one L2-normalised vector each out (a GGUF encoder on llama.cpp).

The model is loaded with one sequence and pooled outputs instead of logits (``load_options``).
"""

from __future__ import annotations

from typing import Any

from lanai.tasks.base import NoParams, Task

__all__ = ["TASK"]


class Embed(Task[NoParams, NoParams]):
    name = "embed"
    summary = "Embed texts"
    kind = "language"
    accepts = "text"
    backends = ("llamacpp",)
    params = NoParams

    def load_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The backend options an embedding model needs: one sequence at a time, and pooled outputs."""
        return {"parallel": 1, **given, "embeddings": True}


TASK = Embed()
