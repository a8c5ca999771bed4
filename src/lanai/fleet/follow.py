"""Following a channel: a box keeps a model at whatever version a registry tag points to.

Every ``follow_interval_s`` (±20 %) the box asks the registry which digest each followed tag names. A new
digest goes through, in order, each step a reason to stop:

1. **its turn**: the artifact's rollout (``lanai push --rings canary,default --soak 2h``) says when this
   box's ring may take it; before then it waits;
2. **no update lock**: an admin's ``lanai follow --lock`` holds every update (a shift, a demo), and an
   activation waits (up to a minute) for the pipelines in flight, so that no run mixes two versions;
3. **pull**: by digest, every layer checked, the signature against the trusted keys (refused for good
   when it does not verify);
4. **golden inputs**: the new version, loaded beside the one serving, must answer them as published;
5. **activate**: swapped in at once (requests in flight finish on the old version; none fails), with
   HAProxy's agent check saying ``maint`` meanwhile;
6. **watch**: for ``watch_s`` the new version's failures and p95 latency are compared with those of the
   version before; failing more, it is rolled back at once, slower over three checks in a row, likewise;
   its digest is refused, and the
   box tells the fleet through the registry (a ``sha256-….rollback`` tag beside the artifact): boxes of
   later rings look for it before step 3 and refuse the version too.

Each step is written to the model's history (``lanai models history NAME``) and shown in the metric
``lanai_update_state``. A refused digest stays refused until ``lanai follow --retry NAME``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lanai.config import Settings
from lanai.errors import ConfigError, LanaiError, RegistryError, SignatureError
from lanai.fleet.reference import Reference, parse_reference
from lanai.store._fs import replace_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Follow", "Follower", "follow_entries", "FleetState", "history"]

log = logging.getLogger(__name__)

_MIN_WATCH_REQUESTS = 20
_MIN_FAILURES = 3
_LATENCY_CHECKS = 3  # checks in a row a slower p95 must last before it rolls back
_MIN_LATENCY_GAIN_S = 0.005
_PIPELINE_WAIT_S = 60.0
ROLLBACK_TYPE = "application/vnd.lanai.rollback.v1"


def rollback_tag(digest: str) -> str:
    """The tag of a box's rollback report for ``digest`` (``sha256:…`` → ``sha256-….rollback``)."""
    return digest.replace(":", "-") + ".rollback"


"""How long an activation waits for the pipelines in flight to finish before it goes ahead anyway."""


@dataclass(frozen=True)
class Follow:
    """One followed channel: ``model`` in this store follows ``reference`` (a tag)."""

    model: str
    reference: str
    plain_http: bool = False
    ca_file: str | None = None
    username: str | None = None


def follow_file(home: Path) -> Path:
    return home / "fleet" / "follow.toml"


def lock_file(home: Path) -> Path:
    return home / "fleet" / "lock"


def follow_entries(settings: Settings) -> list[Follow]:
    """The channels this box follows: ``lanai follow``'s (``<home>/fleet/follow.toml``) and the
    ``[[follow]]`` tables of lanai.toml; ConfigError names a bad entry."""
    found: dict[str, Follow] = {}
    for path in (settings.config_file, follow_file(settings.home)):
        if path is None or not path.is_file():
            continue
        try:
            tables = tomllib.loads(path.read_text(encoding="utf-8")).get("follow", [])
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        for table in tables:
            try:
                entry = Follow(str(table["model"]), str(table["reference"]), bool(table.get("plain_http", False)),
                               table.get("ca_file"), table.get("username"))  # fmt: skip
                parse_reference(entry.reference)
            except (KeyError, TypeError, LanaiError) as exc:
                raise ConfigError(
                    f"{path}: a [[follow]] table is wrong: {exc}",
                    hint='write model = "NAME" and reference = "REGISTRY/REPO:TAG".',
                ) from None
            found[entry.model] = entry
    return list(found.values())


def write_follow_entries(home: Path, entries: list[Follow]) -> None:
    import tomli_w

    path = follow_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{k: v for k, v in asdict(e).items() if v not in (None, False)} for e in entries]
    replace_atomic(path, tomli_w.dumps({"follow": rows}).encode(), home)


class FleetState:
    """What the box knows about one followed model: the digest it runs, the digests it refused and why,
    and the history of updates (``<home>/fleet/<model>.json`` and ``<model>.history.jsonl``)."""

    def __init__(self, home: Path, model: str) -> None:
        self.home = home
        self.folder = home / "fleet"
        self.model = model
        self._path = self.folder / f"{model}.json"
        data: dict[str, Any] = {}
        if self._path.is_file():
            try:
                data = json.loads(self._path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        self.digest: str | None = data.get("digest")
        self.refused: dict[str, str] = dict(data.get("refused", {}))

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"digest": self.digest, "refused": self.refused}, indent=1).encode()
        replace_atomic(self._path, body, self.home)

    def event(self, event: str, digest: str | None = None, version: int | None = None, reason: str = "") -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        row = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event, "digest": digest,
               "version": version, "reason": reason}  # fmt: skip
        with (self.folder / f"{self.model}.history.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")

    def refuse(self, digest: str, reason: str, version: int | None = None, event: str = "refused") -> None:
        self.refused[digest] = reason
        self.save()
        self.event(event, digest, version, reason)


def history(home: Path, model: str) -> list[dict[str, Any]]:
    path = home / "fleet" / f"{model}.history.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a power loss
    return rows


class Follower:
    """The server's channel follower: ``run()`` checks every entry, then sleeps, until cancelled."""

    def __init__(self, plane: Any, entries: list[Follow], settings: Settings) -> None:
        self.plane = plane
        self.entries = entries
        self.settings = settings

        self._watches: dict[str, asyncio.Task[None]] = {}
        self._told: set[tuple[str, str]] = set()

    @property
    def locked(self) -> bool:
        """Updates are held (``lanai follow --lock``: the file ``<home>/fleet/lock``); checked at each step."""
        return lock_file(self.settings.home).exists()

    async def run(self) -> None:
        while True:
            for entry in self.entries:
                try:
                    await self.check(entry)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one channel's trouble must not stop the others
                    log.exception("following %s failed", entry.reference)
            await asyncio.sleep(self.settings.follow_interval_s * random.uniform(0.8, 1.2))

    async def close(self) -> None:
        for task in self._watches.values():
            task.cancel()
        await asyncio.gather(*self._watches.values(), return_exceptions=True)

    async def check(self, entry: Follow) -> str:
        """One look at ``entry``'s channel; returns what came of it (current, refused, waiting, locked,
        unreachable, activated)."""
        from lanai.fleet.artifact import OCI_MANIFEST, Rollout

        state = FleetState(self.settings.home, entry.model)
        ref = parse_reference(entry.reference)
        try:
            with self._client(entry, ref) as client:
                fetched = await asyncio.to_thread(client.get_manifest, ref, (OCI_MANIFEST,))
        except RegistryError as exc:
            self._tell(entry.model, f"unreachable:{exc}", "cannot ask %s about %s: %s", ref, entry.model, exc)
            return "unreachable"
        digest = fetched.digest
        if digest == state.digest:
            return "current"
        if digest in state.refused:
            self._tell(entry.model, digest, "%s: %s stays refused (%s)", entry.model, digest, state.refused[digest])
            return "refused"
        annotations = fetched.json().get("annotations") or {}
        opens = Rollout.of(annotations).opens_at(self.settings.ring)
        if opens > time.time():
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(opens))
            self._tell(entry.model, f"wait:{digest}", "%s: %s is for ring %s from %s", entry.model, digest,
                       self.settings.ring, when)  # fmt: skip
            return "waiting"
        if self.locked:
            self._tell(entry.model, f"lock:{digest}", "%s: %s waits: updates are locked", entry.model, digest)
            return "locked"
        return await self._update(entry, ref.with_digest(digest), state)

    async def _update(self, entry: Follow, ref: Reference, state: FleetState) -> str:
        from lanai.fleet import golden
        from lanai.fleet.artifact import pull

        name, digest, metrics = entry.model, ref.digest or "", self.plane.metrics
        elsewhere = await self._rolled_back_elsewhere(entry, ref)
        if elsewhere is not None:
            state.refuse(digest, elsewhere)
            log.error("%s: %s refused: %s", name, digest, elsewhere)
            return "refused"
        trusted = [Path(key) for key in self.settings.trusted_signing_keys]
        metrics.set_update_state(name, "pulling")
        try:
            with self._client(entry, ref) as client:
                pulled = await asyncio.to_thread(pull, self.plane.store, ref, client, name=name, trusted_keys=trusted)
        except SignatureError as exc:
            state.refuse(digest, str(exc))
            metrics.set_update_state(name, "idle")
            log.error("%s: %s refused: %s", name, digest, exc)
            return "refused"
        except LanaiError as exc:  # the network or the registry: try again next time
            metrics.set_update_state(name, "idle")
            log.warning("%s: pulling %s failed, will retry: %s", name, digest, exc)
            return "unreachable"
        state.event("pulled", digest, pulled.version)
        metrics.set_update_state(name, "verifying")
        try:
            model = await self.plane.open_version(name, pulled.version)
        except LanaiError as exc:
            state.refuse(digest, f"does not load here: {exc}", pulled.version)
            metrics.set_update_state(name, "idle")
            return "refused"
        manifest = self.plane.store.manifest(name, pulled.version)
        if golden.ROLE in manifest.files:
            problems = await golden.check(self.plane, model, self.plane.store.file_path(manifest, golden.ROLE))
            if problems:
                await model.close(self.settings.shutdown_timeout)
                reason = "golden inputs: " + "; ".join(problems)
                state.refuse(digest, reason, pulled.version)
                metrics.set_update_state(name, "idle")
                log.error("%s: version %d (%s) refused: %s", name, pulled.version, digest, reason)
                return "refused"
            state.event("verified", digest, pulled.version, "golden inputs answered as published")
        waited = time.monotonic()
        while self.plane.pipelines_running and time.monotonic() - waited < _PIPELINE_WAIT_S:
            await asyncio.sleep(0.05)  # a pipeline's steps all run on the version they began with
        if self.locked:
            await model.close(self.settings.shutdown_timeout)
            metrics.set_update_state(name, "idle")
            return "locked"
        metrics.set_update_state(name, "activating")
        self.plane.maintenance.add(name)
        try:
            previous = self.plane.models.get(name)
            await self.plane.activate_loaded(name, model)
        finally:
            self.plane.maintenance.discard(name)
        state.digest = digest
        state.save()
        state.event("activated", digest, pulled.version)
        log.info("%s: version %d (%s) activated from %s", name, pulled.version, digest, entry.reference)
        if previous is not None:
            metrics.set_update_state(name, "watching")
            self._watches[name] = asyncio.create_task(self._watch(entry, digest, pulled.version, state))
        else:
            metrics.set_update_state(name, "idle")
        return "activated"

    async def _watch(self, entry: Follow, digest: str, version: int, state: FleetState) -> None:
        """Compare the new version with the one before for ``watch_s``. Failures roll back at once; a slower
        p95 must persist over ``_LATENCY_CHECKS`` checks in a row, so that one slow moment at the swap (new
        instances warming up while the old ones drain) does not turn a good version away."""
        name = entry.model
        deadline = time.monotonic() + self.settings.watch_s
        baseline = self.plane.previous_outcomes.get(name)
        slow_checks = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(min(1.0, max(0.05, self.settings.watch_s / 20)))
            outcomes = self.plane.outcomes.get(name)
            if outcomes is None or outcomes.version != str(version):
                return  # someone activated another version meanwhile
            summary = outcomes.summary()
            reason = failure_verdict(summary, baseline, self.settings)
            if reason is None:
                slower = latency_verdict(summary, baseline, self.settings)
                slow_checks = slow_checks + 1 if slower is not None else 0
                reason = slower if slow_checks >= _LATENCY_CHECKS else None
            if reason is not None:
                await self._roll_back(entry, digest, version, reason, state)
                return
        outcomes = self.plane.outcomes.get(name)
        figures = describe(outcomes.summary(), baseline) if outcomes is not None else ""
        state.event("kept", digest, version, f"watched for {self.settings.watch_s:.0f} s: {figures}")
        self.plane.metrics.set_update_state(name, "idle")

    async def _roll_back(self, entry: Follow, digest: str, version: int, reason: str, state: FleetState) -> None:
        name, store = entry.model, self.plane.store
        self.plane.maintenance.add(name)
        try:
            back = await asyncio.to_thread(store.rollback, name)
            await self.plane.load(name)
        finally:
            self.plane.maintenance.discard(name)
        state.refuse(digest, reason, version, event="rolled_back")
        self.plane.metrics.rollbacks.labels(name).inc()
        self.plane.metrics.set_update_state(name, "rolled_back")
        log.error("%s: version %d rolled back to %d: %s", name, version, back, reason)
        await asyncio.to_thread(self.report_rollback, entry, digest, reason)

    def report_rollback(self, entry: Follow, digest: str, reason: str) -> None:
        """Tell the rest of the fleet, through the registry, that this box rolled ``digest`` back: a small
        artifact tagged ``sha256-<hex>.rollback`` beside it. Boxes of later rings look for it before they
        take the version (and refuse it); the publisher sees it with any registry client. Needs write
        access to the repository; without it the rollback stays this box's own (and is logged)."""
        import json as _json
        import socket

        from lanai.fleet.artifact import OCI_MANIFEST
        from lanai.fleet.registry import sha256_digest

        ref = parse_reference(entry.reference)
        config = b"{}"
        document = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ROLLBACK_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(config), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(config), "size": 2}],
            "annotations": {
                "org.lanai.rollback.digest": digest,
                "org.lanai.rollback.reason": reason[:1000],
                "org.lanai.rollback.box": socket.gethostname(),
                "org.lanai.rollback.ring": self.settings.ring,
                "org.opencontainers.image.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        }  # fmt: skip
        try:
            with self._client(entry, ref) as client:
                client.push_blob(ref.repository, sha256_digest(config), len(config), config)
                client.put_manifest(ref.repository, rollback_tag(digest), _json.dumps(document).encode(), OCI_MANIFEST)
        except LanaiError as exc:
            log.warning("%s: could not tell the fleet about the rollback of %s: %s", entry.model, digest, exc)

    async def _rolled_back_elsewhere(self, entry: Follow, ref: Reference) -> str | None:
        """Why another box rolled ``ref``'s digest back (its report in the registry), or None."""
        from lanai.fleet.artifact import OCI_MANIFEST

        report = Reference(ref.registry, ref.repository, rollback_tag(ref.digest or ""))
        try:
            with self._client(entry, ref) as client:
                fetched = await asyncio.to_thread(client.get_manifest, report, (OCI_MANIFEST,))
        except RegistryError:
            return None  # none (or the registry is away: the pull will find out)
        notes = fetched.json().get("annotations") or {}
        box, ring = notes.get("org.lanai.rollback.box", "another box"), notes.get("org.lanai.rollback.ring", "?")
        return f"rolled back on {box} (ring {ring}): {notes.get('org.lanai.rollback.reason', '')}"

    def _client(self, entry: Follow, ref: Reference) -> Any:
        import os

        from lanai.fleet.registry import PASSWORD_ENV, Credentials, RegistryClient, docker_credentials

        credentials = docker_credentials(ref.registry)
        if entry.username:
            credentials = Credentials(entry.username, os.environ.get(PASSWORD_ENV, ""))
        ca_file = Path(entry.ca_file) if entry.ca_file else None
        return RegistryClient(ref.registry, plain_http=entry.plain_http, ca_file=ca_file, credentials=credentials)

    def _tell(self, model: str, key: str, message: str, *args: Any) -> None:
        """Log a waiting or refusing state once, not at every poll."""
        if (model, key) not in self._told:
            self._told.add((model, key))
            log.info(message, *args)


def failure_verdict(new: Any, old: Any, settings: Settings) -> str | None:
    """Why the new version's failures (``OutcomeSummary``) are worse than the old one's, or None."""
    if new.failures < _MIN_FAILURES or new.requests < 1:
        return None
    old_ratio = old.failure_ratio if old is not None else 0.0
    if new.failure_ratio > max(settings.rollback_failure_ratio, 2 * old_ratio):
        return (f"{new.failures} of {new.requests} requests failed ({new.failure_ratio:.0%}; "
                f"the version before: {old_ratio:.0%})")  # fmt: skip
    return None


def latency_verdict(new: Any, old: Any, settings: Settings) -> str | None:
    """Why the new version's p95 latency is worse than the old one's, or None (also when too few requests)."""
    if old is None or old.p95_s is None or new.p95_s is None:
        return None
    if new.requests - new.failures < _MIN_WATCH_REQUESTS or old.requests < _MIN_WATCH_REQUESTS:
        return None
    if new.p95_s > old.p95_s * settings.rollback_latency_factor and new.p95_s - old.p95_s > _MIN_LATENCY_GAIN_S:
        return f"p95 latency {new.p95_s * 1e3:.1f} ms against {old.p95_s * 1e3:.1f} ms before"
    return None


def describe(new: Any, old: Any) -> str:
    """A watch's figures, for the history: the new version's, and the one's before it."""

    def one(summary: Any) -> str:
        p95 = "-" if summary.p95_s is None else f"{summary.p95_s * 1e3:.1f} ms"
        return f"{summary.requests} requests, {summary.failures} failed, p95 {p95}"

    return one(new) + ("" if old is None else f" (the version before: {one(old)})")
