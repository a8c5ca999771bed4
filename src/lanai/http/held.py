"""A language-model request holds its model while its handler runs.

The handler waits for an on-demand load, parses and renders the prompt, then hands the work to the model's
generation engine, which counts it as busy from there until the last token. The hold
(``Residency.hold``) covers the part before the hand-off, so that a model with a short keep_alive is not
unloaded between its load and its request. The doors' error wrappers release it when the handler returns.
"""

from __future__ import annotations

from starlette.requests import Request

from lanai.dataplane import DataPlane

__all__ = ["load_and_hold", "release_held"]

_KEY = "lanai.held"


async def load_and_hold(request: Request, plane: DataPlane, name: str) -> None:
    """Hold ``name`` for the rest of this request's handler, and load it first if it loads on demand."""
    plane.residency.hold(name)
    request.scope.setdefault(_KEY, []).append(name)
    await plane.ensure(name)


def release_held(request: Request) -> None:
    """Release what :func:`load_and_hold` held for this request (nothing if it held nothing)."""
    held = request.scope.pop(_KEY, ())
    if held:
        plane: DataPlane = request.app.state.plane
        for name in held:
            plane.residency.release(name)
