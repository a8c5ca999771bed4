"""Server settings: defaults < lanai.toml < LANAI_* environment < command-line flags.

Only :func:`load_settings` reads files and the environment; everything else receives a ``Settings``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lanai.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Settings", "load_settings", "default_home", "DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_PIXELS = 50_000_000
"""Images larger than this (by their header, before decoding) are refused: decompression bombs."""

ENV_PREFIX = "LANAI_"


def default_home() -> Path:
    """The platform's user data directory for lanai (e.g. ~/.local/share/lanai)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("lanai", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=default_home)
    """The model store's directory."""
    host: str = "0.0.0.0"
    """Address to listen on; 0.0.0.0 serves the whole LAN, 127.0.0.1 only this machine."""
    port: int = 8000
    grpc_port: int = 8001
    """The Open Inference Protocol gRPC port; 0 picks a free one."""
    grpc: bool = True
    """Serve gRPC too (when its runtime, the grpc extra, is installed)."""
    discovery: bool = True
    """Advertise the box on the LAN over mDNS/DNS-SD (_lanai._tcp), so apps and ``lanai discover`` find it."""
    default_model: str | None = None
    """Model that /v1/infer and /predict use; None: the bundled default model, else the only one."""
    deepstack_detection_model: str | None = None
    """Model that DeepStack's /v1/vision/detection uses; None: the only detect model, else the first that
    is not a face detector."""
    deepstack_face_model: str | None = None
    """Model that DeepStack's /v1/vision/face uses; None: the first detect model with RetinaFace's outputs."""
    providers: tuple[str, ...] = ("tensorrt", "cuda", "openvino", "cpu")
    """ONNX Runtime execution providers in priority order; those not installed are skipped."""
    litert_delegates: tuple[str, ...] = ()
    """LiteRT delegate libraries to try, in order, for .tflite models (e.g. libedgetpu.so.1); the CPU if none loads."""
    intra_op_threads: int = 0
    """Threads one model run may use; 0: one per core."""
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    allow_spinning: bool = False
    """Let idle inference threads spin-wait: a little lower latency, but they take CPU from decoding."""
    max_body_bytes: int = 32 * 2**20
    """Larger request bodies are refused with 413."""
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    """Larger images (by header, before decoding) are refused with 413."""
    embedding_cache_bytes: int = 64 * 2**20
    """Memory for the embedding cache (answers of the embed tasks by model version and content hash,
    least recently used dropped first); 0 turns the cache off."""
    embedding_cache_disk: bool = False
    """Also keep the embedding cache on disk, in ``<home>/cache/embeddings``, across restarts."""
    header_timeout: float = 10.0
    """Seconds a client may take to send a request's headers (slow clients would hold connections); on
    gRPC, to finish the TLS and HTTP/2 handshake."""
    body_timeout: float = 60.0
    """Seconds a client may take to send a request's body."""
    max_connections_per_client: int = 64
    """Open connections one address may hold; one more gets 429."""
    max_connections: int = 1024
    """Connections and requests in progress over all clients; past it, 503 (gRPC: the connection is refused)."""
    grpc_idle_timeout: float = 300.0
    """Seconds a gRPC connection may carry no call before the server closes it (clients reconnect)."""
    grpc_max_streams: int = 100
    """gRPC calls one connection may have in progress at once; more wait in the client."""
    shutdown_timeout: float = 10.0
    """Seconds to let in-flight requests finish after SIGTERM."""
    log_level: str = "info"
    access_log: bool = False
    auth: str = "lan"
    """"lan": inference is open to callers without a key (admin actions always need one); "required":
    every request but the health checks needs a key."""
    admin_loopback: bool = True
    """Clients on this machine may do admin actions without a key."""
    allowed_networks: tuple[str, ...] = ("local",)
    """Networks clients may come from: "local" (private, CGNAT, link-local, loopback), CIDRs, or "any"."""
    trusted_proxies: tuple[str, ...] = ()
    """Reverse proxies whose X-Forwarded-For names the real client (CIDRs). A proxy on this box must be
    listed here, or every client would look like this machine."""
    metrics_key: str | None = None
    """A key that may read /metrics (and nothing else), for a Prometheus scraper."""
    api_key: str | None = None
    """One shared admin key, the older way: when set, every request but the health checks needs it."""
    tls: bool = False
    """Serve HTTPS and gRPC over TLS with the store's own certificate (``lanai certs init`` makes it)."""
    mtls: bool = False
    """As ``tls``, and require a client certificate signed by the store's CA."""
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_client_ca: Path | None = None
    """Require a client certificate signed by this CA (PEM), on HTTP and gRPC."""
    tls_client_pins: tuple[str, ...] = ()
    """Under mTLS, accept only the client certificates with these SHA-256 fingerprints (as ``lanai certs``
    prints them); empty: any the CA signed. Certificates that no CA signed can be pinned by listing them in
    ``tls_client_ca`` too (each one is then its own authority)."""
    load_timeout_s: float = 900.0
    """A model that has not loaded after this long is given up (marked failed; the others serve on). A
    big language model on a Pi's SD card takes minutes: the default leaves room for that."""
    load_models: str = "start"
    """When models load: "start" (when the server starts; they stay) or "demand" (on their first request;
    they leave after keep_alive idle). Per model: [models.NAME] load = … in lanai.toml."""
    keep_alive: str = "5m"
    """How long a model loaded on demand stays after its last request ("30s", "10m", "-1": for ever)."""
    max_loaded_models: int = 0
    """At most this many models in memory (0: no limit); on-demand models make room for each other."""
    memory_budget_mb: int = 0
    """At most this much memory for models (0: no limit): least recently used on-demand models are unloaded
    to make room. A model's size is what the process grew by when it loaded."""
    prompt_cache_ram_mb: int = 256
    """Per language model: host RAM for caches of long prompt beginnings beyond the slots (0: none). A
    1,000-token prompt of SmolLM2-135M takes about 23 MB."""
    prompt_cache_disk_mb: int = 1024
    """Per language model: disk (``<store>/cache/prompts/``) for those caches across reloads and restarts (0: none)."""
    prompt_cache_min_tokens: int = 256
    """Shorter prompts are cheaper to read again than to keep."""
    canary_load: bool = True
    """Load each model file in a child process the first time, before the server loads it: a runtime that
    crashes on a damaged file (a segfault, an abort) kills the child, and the server reports the crash
    instead of dying of it. Costs about a second once per file and runtime (remembered in the store)."""
    doctor_at_start: bool = False
    """Run ``lanai doctor --quick`` (without the port check) as the server starts, before the models load;
    its status and its warn and fail lines are shown in ``/health`` (and logged)."""
    thermal_soft_c: float = 75.0
    """Past this temperature (or while a Raspberry Pi's firmware throttles) the box admits less: smaller
    queues, longer batch waits, a lower weight for the load balancer's agent check."""
    thermal_hard_c: float = 82.0
    """Past this temperature the box refuses work (503 with Retry-After) and reports degraded."""
    monitor_interval_s: float = 5.0
    """How often the device monitor reads the sensors (temperature, throttling, memory, disk)."""
    status_interval_s: float = 5.0
    """How often the status recorder samples the box and each model's requests for ``GET /v1/status``
    (15 minutes are kept: 180 samples at 5 s)."""
    sensors_root: Path = Path("/")
    """Where the monitor reads ``sys/class/thermal`` and the Raspberry Pi's throttling bits from."""
    agent_port: int = 0
    """A TCP port for HAProxy's agent check (one line: ``75% ready maxconn:12``, ``drain``, ``maint``);
    0 turns it off."""
    agent_host: str | None = None
    """Address for the agent check; None: the HTTP door's ``host``."""
    ring: str = "default"
    """The rollout ring this box belongs to (e.g. canary): a channel's new version reaches the rings in the
    order its publisher gave (``lanai push --rings canary,default --soak 2h``)."""
    follow_interval_s: float = 300.0
    """How often the box asks the registry about the channels it follows (±20 % jitter, so a fleet does
    not ask all at once)."""
    watch_s: float = 600.0
    """After a followed model's new version activates, how long the box compares it with the version
    before (failures, p95 latency) and rolls it back if it is worse."""
    rollback_failure_ratio: float = 0.05
    """A new version failing more than this share of its requests (and twice the old one's) is rolled back."""
    rollback_latency_factor: float = 2.0
    """A new version whose p95 latency is this many times the old one's is rolled back."""
    config_file: Path | None = None
    """The lanai.toml these settings were read from, if any (its ``[[follow]]`` tables list channels)."""
    trusted_signing_keys: tuple[str, ...] = ()
    """Public keys (PEM files) that model artifacts pulled from a registry must be signed with (OpenSSF
    model signing, key mode). Empty: a pull takes unsigned artifacts and says so."""

    def with_store_tls(self) -> Settings:
        """``tls``/``mtls`` resolved to the files of ``<home>/tls`` (explicit files take precedence)."""
        if not (self.tls or self.mtls):
            return self
        tls = self.home / "tls"
        changes: dict[str, Any] = {}
        if self.tls_certfile is None:
            changes.update(tls_certfile=tls / "server.pem", tls_keyfile=tls / "server.key")
        if self.mtls and self.tls_client_ca is None:
            changes["tls_client_ca"] = tls / "ca.pem"
        resolved = dataclasses.replace(self, **changes)
        for path in (resolved.tls_certfile, resolved.tls_keyfile, resolved.tls_client_ca):
            if path is not None and not path.is_file():
                raise ConfigError(f"{path} does not exist.", hint="run: lanai certs init")
        return resolved

    def with_overrides(self, values: Mapping[str, Any]) -> Settings:
        """A copy with ``values`` (None values ignored) converted to each field's type."""
        known = {f.name: f for f in fields(self)}
        changes = {}
        for key, value in values.items():
            if value is None:
                continue
            if key not in known:
                raise ConfigError(f"unknown setting {key!r}.", hint=f"known settings: {', '.join(known)}.")
            changes[key] = _convert(key, value, getattr(self, key), known[key].type)
        return dataclasses.replace(self, **changes)


def _convert(key: str, value: Any, current: Any, annotation: Any) -> Any:
    text_type = str(annotation)
    try:
        if "tuple" in text_type:
            items = value.split(",") if isinstance(value, str) else value
            return tuple(str(v).strip() for v in items if str(v).strip())
        if "Path" in text_type:
            return Path(value).expanduser()
        if "bool" in text_type:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if "int" in text_type:
            return int(value)
        if "float" in text_type:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"setting {key!r} has value {value!r}, which is not a valid {text_type}.",
            hint=f"for example {key} = {current!r}.",
        ) from None


def _from_env(environ: Mapping[str, str]) -> dict[str, str]:
    names = {f.name for f in fields(Settings)}
    found = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() in names:
            found[key[len(ENV_PREFIX) :].lower()] = value
    return found


_OTHER_TABLES = ("models", "follow")
"""lanai.toml's tables that are not settings: read by ``dataplane.residency`` and ``fleet.follow``."""


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from None
    if "server" in data:
        return data["server"]  # type: ignore[no-any-return]
    return {key: value for key, value in data.items() if key not in _OTHER_TABLES}  # settings at the top level


def load_settings(
    config_file: Path | None = None,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the sources in order. Without ``config_file``, ``<home>/lanai.toml`` is read if present."""
    environ = os.environ if environ is None else environ
    env, cli = _from_env(environ), {k: v for k, v in (cli or {}).items() if v is not None}
    settings = Settings()
    # a flag left out (None) must not hide LANAI_HOME: the store's lanai.toml is found through either
    home_only = settings.with_overrides({k: v for k, v in {**env, **cli}.items() if k == "home"})
    path = config_file or home_only.home / "lanai.toml"
    if config_file is not None or path.is_file():
        settings = dataclasses.replace(settings.with_overrides(_from_file(path)), config_file=path)
    return settings.with_overrides(env).with_overrides(cli)
