"""Which models are in memory: some load at start and stay; others load on their first request, leave after
an idle time, and make room for each other within a memory budget — several models on one small box.

Per model, in ``lanai.toml``::

    [models.smol]
    load = "demand"        # or "start" (the default: load when the server starts, stay loaded)
    keep_alive = "10m"     # idle time before a demand model is unloaded: 30s, 10m, 2h, or -1 (never)

and for the whole box ``load_models`` (the default policy), ``keep_alive`` (the default idle time of
demand models), ``max_loaded_models`` and ``memory_budget_mb``. A request may also carry ``keep_alive``
(Ollama's API does): it sets that model's idle time from then on; 0 unloads it once its requests are done.

A request holds its model from before its load until its work is handed to the model
(:meth:`Residency.hold`; from then on the model's queue or generation engine counts it): an idle model is
never unloaded under a request, however short its keep_alive. Requests for a demand model that is not
loaded wait for its load (one load, however many wait; bounded by
``load_timeout_s``); requests for other models go on meanwhile. Before a load, least recently used demand
models with no request in flight are unloaded until the newcomer fits under ``max_loaded_models`` and
``memory_budget_mb``; models that load at start are never evicted. A model's memory is what the process's
resident memory grew by when it loaded (the file's size, the first time: an estimate until it is known).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lanai.errors import ConfigError, ModelLoadError, ModelNotFound, Overloaded

if TYPE_CHECKING:
    from lanai.dataplane.plane import DataPlane

__all__ = ["Residency", "Policy", "parse_duration", "read_policies"]

log = logging.getLogger(__name__)

_RETRY_S = 30.0  # after a failed load on demand, requests get its error this long before it is tried again
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, *, what: str = "keep_alive") -> float | None:
    """Seconds from ``30``, ``"30s"``, ``"10m"``, ``"1h30m"``; None (forever) from any negative value."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a duration, not {value!r}.", hint='e.g. "5m", 300, or -1 for ever.')
    if isinstance(value, (int, float)):
        return None if value < 0 else float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"-\d+(\.\d+)?[a-z]*", text):
            return None
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNITS[u] for n, u in parts)
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
    raise ConfigError(f"{what} {value!r} is not a duration.", hint='e.g. "30s", "5m", "2h", 300, or -1 for ever.')


@dataclass(frozen=True)
class Policy:
    load: Literal["start", "demand"] = "start"
    keep_alive: float | None = None
    """Idle seconds before a demand model is unloaded; None: never."""


def read_policies(config_file: Path | None) -> dict[str, Policy]:
    """The ``[models.NAME]`` tables of lanai.toml (defaults filled in by :class:`Residency`)."""
    if config_file is None or not config_file.is_file():
        return {}
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    tables = data.get("models", {})
    if not isinstance(tables, Mapping):
        raise ConfigError(f"[models] in {config_file} must hold one table per model.", hint="e.g. [models.smol]")
    policies = {}
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"[models.{name}] in {config_file} must be a table.")
        unknown = set(table) - {"load", "keep_alive"}
        if unknown:
            raise ConfigError(f"[models.{name}] has unknown keys {sorted(unknown)}.", hint="known: load, keep_alive.")
        load = table.get("load", "")
        if load not in ("", "start", "demand"):
            raise ConfigError(f"[models.{name}] load is {load!r}.", hint='use "start" or "demand".')
        keep: float | None = -2.0  # the box's default
        if "keep_alive" in table:
            keep = parse_duration(table["keep_alive"], what=f"[models.{name}] keep_alive")
        policies[name] = Policy(load or "", keep)  # type: ignore[arg-type]  # "" and -2: the box's default
    return policies


class Residency:
    """Loads on demand, unloads the idle, evicts to fit; see the module's notes."""

    def __init__(self, plane: DataPlane) -> None:
        settings = plane.settings
        self.plane = plane
        self.default = Policy(settings.load_models, parse_duration(settings.keep_alive))  # type: ignore[arg-type]
        self.policies = read_policies(settings.config_file)
        self.max_loaded = settings.max_loaded_models
        self.budget = settings.memory_budget_mb << 20
        self.last_used: dict[str, float] = {}
        self.keep_alive: dict[str, float | None] = {}
        """Idle time per demand model, as set by its policy or its latest request."""
        self.footprint: dict[str, int] = {}
        """Bytes each model took when it last loaded."""
        self._held: dict[str, int] = {}
        """Per model, the requests between their start and their hand-off to the model (see :meth:`hold`)."""
        self._loads: dict[str, asyncio.Task[Any]] = {}
        self._failed_at: dict[str, float] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def policy(self, name: str) -> Policy:
        given = self.policies.get(name)
        if given is None:
            return self.default
        load = given.load or self.default.load
        keep = self.default.keep_alive if given.keep_alive == -2.0 else given.keep_alive
        return Policy(load, keep)  # type: ignore[arg-type]

    def loads_at_start(self, name: str) -> bool:
        return self.policy(name).load == "start"

    def on_demand(self, name: str) -> bool:
        return self.policy(name).load == "demand"

    def loading(self, name: str) -> bool:
        task = self._loads.get(name)
        return task is not None and not task.done()

    # -- requests ---------------------------------------------------------------------------------

    async def ensure(self, name: str) -> None:
        """Return once ``name`` is loaded, loading it first if it loads on demand (shared by everyone who
        asks meanwhile). A model that is not on demand, or not in the store, is left to ``plane.get``'s
        errors."""
        plane = self.plane
        if name in plane.models or not self.on_demand(name) or plane.draining:
            return
        task = self._loads.get(name)
        if task is None or task.done():
            failed_at = self._failed_at.get(name)
            if name in plane.failed and failed_at is not None and time.monotonic() - failed_at < _RETRY_S:
                return  # it failed a moment ago: answer with that, rather than hammer the runtime
            summary = next((s for s in plane.store.list() if s.name == name), None)
            if summary is None or summary.active is None:
                return
            task = asyncio.ensure_future(self._load(name))
            self._loads[name] = task
        try:
            await asyncio.shield(task)
        except ModelLoadError:  # as for a model that failed at start: 404 with the reason, for every waiter
            self._failed_at[name] = time.monotonic()
            raise ModelNotFound(f"model {name!r} failed to load: {plane.failed.get(name, 'see the log')}") from None

    def touch(self, name: str, keep_alive: float | None | Literal["default"] = "default") -> None:
        """A request for ``name`` ended (or began): it is in use now; ``keep_alive`` sets its idle time."""
        self.last_used[name] = time.monotonic()
        if keep_alive != "default":
            self.keep_alive[name] = keep_alive
            if keep_alive == 0:
                self.wake()

    def hold(self, name: str) -> None:
        """A request will use ``name``: until :meth:`release`, the model is busy (not unloaded, not evicted).
        Taken before the request waits for the load, released once the model's queue or engine has its work."""
        self._held[name] = self._held.get(name, 0) + 1

    def release(self, name: str) -> None:
        left = self._held.get(name, 0) - 1
        if left > 0:
            self._held[name] = left
            return
        self._held.pop(name, None)
        self.last_used[name] = time.monotonic()
        if self.keep_alive.get(name) == 0:
            self.wake()

    def busy(self, name: str) -> bool:
        """Whether ``name`` is held by a request, or has requests queued or being answered."""
        if self._held.get(name):
            return True
        model = self.plane.models.get(name)
        if model is None:
            return False
        engine = getattr(model, "engine", None)
        return model.queue_depth > 0 or (engine is not None and engine.busy)

    # -- loading and making room -------------------------------------------------------------------

    async def _load(self, name: str) -> None:
        plane = self.plane
        await self._make_room(name)
        before = _rss()
        log.info("loading %s on demand", name)
        started = time.perf_counter()
        await plane.load(name)
        self.footprint[name] = max(0, _rss() - before) or self._guess(name)
        self.keep_alive.setdefault(name, self.policy(name).keep_alive)
        self.last_used[name] = time.monotonic()
        plane.metrics.demand_loads.labels(name).inc()
        took = time.perf_counter() - started
        log.info("%s loaded on demand in %.2f s (%d MB)", name, took, self.footprint[name] >> 20)
        self.wake()

    async def _make_room(self, name: str) -> None:
        plane = self.plane
        need = self.footprint.get(name) or self._guess(name)
        while True:
            loaded = [n for n in plane.models if n != name]
            used = sum(self.footprint.get(n, 0) for n in loaded)
            too_many = self.max_loaded > 0 and len(loaded) + 1 > self.max_loaded
            too_big = self.budget > 0 and used + need > self.budget
            if not (too_many or too_big):
                return
            idle = [n for n in loaded if self.on_demand(n) and not self.busy(n) and not self.loading(n)]
            if not idle:
                why = (f"{len(loaded)} models are loaded (max_loaded_models {self.max_loaded})" if too_many
                       else f"{used >> 20} MB of the {self.budget >> 20} MB memory budget are in use")  # fmt: skip
                raise Overloaded(f"no room to load {name!r}: {why} and every other model is busy or pinned.",
                                 hint="retry in a moment, or raise the limit.", retry_after=5)  # fmt: skip
            oldest = min(idle, key=lambda n: self.last_used.get(n, 0.0))
            log.info("unloading %s (least recently used) to make room for %s", oldest, name)
            await self._unload(oldest, "evicted")

    def _guess(self, name: str) -> int:
        """A model's memory before it has ever loaded here: its files' size."""
        try:
            manifest = self.plane.store.manifest(name)
        except Exception:
            return 0
        return sum(ref.size for ref in manifest.files.values() if getattr(ref, "size", None))

    async def _unload(self, name: str, why: str) -> None:
        plane = self.plane
        try:
            await plane.unload(name)
        except ModelNotFound:
            return
        plane.metrics.demand_unloads.labels(name, why).inc()

    # -- idle unloading ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._sweeper is None:
            self._wake = asyncio.Event()
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for task in self._loads.values():
            task.cancel()

    def wake(self) -> None:
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake.set()

    async def _sweep(self) -> None:
        """Unload demand models idle past their keep-alive; sleep until the next one is due."""
        while True:
            now = time.monotonic()
            due = 60.0
            for name in [n for n in list(self.plane.models) if self.on_demand(n)]:
                keep = self.keep_alive.get(name, self.policy(name).keep_alive)
                if keep is None or self.loading(name):
                    continue
                if self.busy(name):
                    self.last_used[name] = now  # idle time counts from its last request's end
                    due = min(due, 1.0)
                    continue
                left = self.last_used.get(name, now) + keep - now
                if left <= 0:
                    log.info("unloading %s: idle for %.0f s", name, keep)
                    await self._unload(name, "idle")
                else:
                    due = min(due, left)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.05, due))
            except asyncio.TimeoutError:
                pass

    def status(self, name: str) -> dict[str, Any]:
        """For model lists: loaded or not, and when it will leave."""
        loaded = name in self.plane.models
        keep = self.keep_alive.get(name, self.policy(name).keep_alive)
        expires = None
        if loaded and self.on_demand(name) and keep is not None:
            expires = time.time() + max(0.0, self.last_used.get(name, time.monotonic()) + keep - time.monotonic())
        state = "loaded" if loaded else "loading" if self.loading(name) else "available"
        return {"state": state, "load": self.policy(name).load, "expires_at": expires,
                "memory_bytes": self.footprint.get(name) if loaded else None}  # fmt: skip


def _rss() -> int:
    """This process's resident memory in bytes (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
