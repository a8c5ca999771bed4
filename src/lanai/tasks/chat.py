"""The chat task: a conversation in, the assistant's next message out, on a language model.

Requests arrive through the OpenAI- or Ollama-compatible endpoints; the data plane renders the messages
with the model's chat template (``chat_template``) and the generation engine answers.
"""

from __future__ import annotations

from lanai.tasks.base import NoParams, Task

__all__ = ["TASK"]


class Chat(Task[NoParams, NoParams]):
    name = "chat"
    summary = "Answer a conversation"
    kind = "language"
    accepts = "messages"
    backends = ("llamacpp",)
    params = NoParams


TASK = Chat()
