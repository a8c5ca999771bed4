"""Switching the version a running server serves: activate one, or roll back to the one before.

Both change the store and the service together, as ``lanai follow`` does: the new version loads beside
the old, which serves until the new one is ready, then drains. A version that does not load changes
nothing: the old one keeps serving and stays active in the store. The admin API calls them, and so do
``lanai models activate`` and ``rollback`` when a server runs on their store (found through
``<home>/run/lifecycle.json``); with none running, those change the store alone.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from lanai.errors import LanaiError, ModelLoadError

if TYPE_CHECKING:
    from lanai.dataplane.models import Loaded
    from lanai.dataplane.plane import DataPlane

__all__ = ["activate_version", "roll_back"]


async def activate_version(plane: DataPlane, name: str, version: int) -> Loaded:
    """Make ``version`` of ``name`` active in the store and in service; return the model now serving.
    ModelNotFound/VersionNotFound when there is no such version; ModelLoadError, saying why, when it
    does not load (the store and the server are then as they were)."""
    await asyncio.to_thread(plane.store.manifest, name, version)  # no such model or version: said first
    model = await _open(plane, name, version)
    await _put_in_service(plane, name, model)
    return model


async def roll_back(plane: DataPlane, name: str) -> Loaded:
    """Go back to the version active before the current one, as ``lanai models rollback`` does (an undo
    stack: twice goes back two steps), in the store and in service; return the model now serving.
    StoreError when there is nothing to go back to; ModelLoadError when it does not load (the store's
    active version and history are then restored, and the current version keeps serving)."""
    store = plane.store
    before = await asyncio.to_thread(store.active, name)
    back = await asyncio.to_thread(store.rollback, name)
    try:
        model = await _open(plane, name, back)
    except LanaiError:
        if before is not None:  # activating it again pushes ``back`` onto the history: as it was
            await asyncio.to_thread(store.activate, name, before)
        raise
    await _put_in_service(plane, name, model)
    return model


async def _open(plane: DataPlane, name: str, version: int) -> Loaded:
    try:
        return await plane.open_version(name, version)
    except LanaiError as exc:
        serving = plane.models.get(name)
        still = f"; version {serving.version} still serves" if serving is not None else ""
        raise ModelLoadError(
            f"{name} version {version} did not load{still}: {exc.message}",
            hint=exc.hint or f"check its files (lanai models show {name} {version}), or remove it.",
        ) from exc


async def _put_in_service(plane: DataPlane, name: str, model: Loaded) -> None:
    plane.maintenance.add(name)  # the agent check says "maint" during the swap, as for lanai follow
    try:
        await plane.activate_loaded(name, model)
    finally:
        plane.maintenance.discard(name)
