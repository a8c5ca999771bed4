"""``lanai doctor``: a self-test of the box, as data (printing is ``doctor_cli``'s job).

Each check returns :class:`DoctorCheck` values: ``ok``; ``warn`` (it works, worse than it could) or
``fail`` (it is broken), each with a one-line fix; ``skip`` when there is nothing to check here (no
thermal sensor in a VM, no cpufreq in a container). The sensors are read from ``settings.sensors_root``,
like the server's device monitor (``telemetry.monitor``), so tests point it at a fake ``/sys``.
"""

from __future__ import annotations

import errno
import http.client
import logging
import shutil
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lanai
from lanai.config import Settings
from lanai.protocol.doctor import DoctorCheck, DoctorReport, verdict
from lanai.telemetry.monitor import Condition, DeviceMonitor, ThermalLimits

__all__ = ["DoctorOptions", "run_doctor", "check_governor", "check_device", "check_port"]

log = logging.getLogger(__name__)

_SLOW_GOVERNORS = ("ondemand", "powersave", "conservative")
_GOVERNOR_FIX = (
    "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor "
    "(at every boot: GOVERNOR=performance in /etc/default/cpufrequtils, with cpufrequtils installed)"
)


@dataclass(frozen=True)
class DoctorOptions:
    """What to run, and the thresholds below which memory and disk warn or fail."""

    benchmark: bool = True
    """Time each active model (``--quick`` turns it off)."""
    runs: int = 20
    """Timed requests per model, after a warm-up."""
    port: bool = True
    """Check the HTTP port (a server that answers, or a port that can be bound)."""
    warn_memory_mb: float = 512.0
    fail_memory_mb: float = 150.0
    warn_disk_mb: float = 2048.0
    fail_disk_mb: float = 500.0


def run_doctor(settings: Settings, options: DoctorOptions | None = None) -> DoctorReport:
    """Run every check (blocking: seconds with the benchmark, well under one without)."""
    from lanai.dataplane.plane import _runtime_versions

    options = options or DoctorOptions()
    checks: list[DoctorCheck] = [_check_runtimes(_runtime_versions())]
    failures: list[DoctorCheck] = []  # checks that raised where they return more than a check
    providers, provider_checks = _guarded(failures, "providers", lambda: check_providers(settings), ((), []))
    checks += provider_checks
    checks.append(_guarded(failures, "litert delegates", lambda: check_delegates(settings)))
    checks += _guarded(failures, "device", lambda: check_device(settings, options), [])
    checks.append(_guarded(failures, "governor", lambda: check_governor(settings.sensors_root)))
    interfaces, network = _guarded(failures, "network", check_network, ({}, None))
    if network is not None:  # else its failure is among ``failures``
        checks.append(network)
    if options.port:
        checks.append(_guarded(failures, "port", lambda: check_port(settings)))
    benchmarks: tuple = ()
    if options.benchmark:
        from lanai.doctor_bench import benchmark_store

        timed = _guarded(failures, "models", lambda: benchmark_store(settings, options.runs), ((), []))
        benchmarks, bench_checks = timed
        checks += bench_checks
    checks += failures
    found = tuple(checks)
    return DoctorReport(verdict(found), lanai.__version__, found, _runtime_versions(), providers, interfaces,
                        tuple(benchmarks))  # fmt: skip


def _guarded(failures: list[DoctorCheck], name: str, check: Any, instead: Any = None) -> Any:
    """``check()``, or — when it raises (an emulator or kernel without some call, a sensor that errs) —
    ``instead`` (by default a failed check), with the error kept as a failed check: one broken check never
    costs the report."""
    try:
        return check()
    except Exception as exc:  # whatever a check meets, the others still run and the report is printed
        failed = _crashed(name, exc)
        if instead is None:
            return failed
        failures.append(failed)
        return instead


def _crashed(name: str, exc: BaseException | None = None) -> DoctorCheck:
    why = f"{type(exc).__name__}: {exc}" if exc is not None else "the check could not run"
    return DoctorCheck(name, "fail", f"the check itself failed ({why})",
                       "report it with this line; the other checks ran")  # fmt: skip


def _check_runtimes(runtimes: dict[str, str]) -> DoctorCheck:
    listed = ", ".join(f"{name} {version}" for name, version in runtimes.items())
    if "onnxruntime" not in runtimes:
        return DoctorCheck("runtimes", "fail", listed, "pip install onnxruntime (lanai's tensor runtime)")
    return DoctorCheck("runtimes", "ok", listed)


# -- accelerators -----------------------------------------------------------------------------------


def check_providers(settings: Settings) -> tuple[tuple[str, ...], list[DoctorCheck]]:
    """ONNX Runtime's providers in this build; for each configured one besides the CPU, whether a session
    on the bundled model really runs on it."""
    try:
        import onnxruntime as ort

        from lanai.backends.onnx import resolve_provider
    except ImportError:
        return (), [DoctorCheck("providers", "fail", "onnxruntime is not installed", "pip install onnxruntime")]
    available = tuple(ort.get_available_providers())
    checks = [DoctorCheck("providers", "ok", "in this onnxruntime build: " + ", ".join(available))]
    try:
        wanted = [resolve_provider(p) for p in settings.providers]
    except Exception as exc:  # ConfigError: an unknown name
        return available, [*checks, DoctorCheck("accelerator", "fail", str(exc), "fix the providers setting")]
    accelerators = [p for p in dict.fromkeys(wanted) if p != "CPUExecutionProvider"]
    missing = [p for p in accelerators if p not in available]
    if missing:
        default = settings.providers == Settings().providers  # the default list names every accelerator
        checks.append(DoctorCheck(
            "accelerator", "skip" if default else "warn",
            f"configured but not in this build, skipped as the server does: {', '.join(missing)}",
            None if default else "install the onnxruntime build with it (e.g. onnxruntime-gpu), or drop it "
            "from the providers setting",
        ))  # fmt: skip
    for provider in (p for p in accelerators if p in available):
        checks.append(_try_provider(ort, provider))
    if not accelerators:
        checks.append(DoctorCheck("accelerator", "skip", "none configured: models run on the CPU"))
    return available, checks


def _try_provider(ort: object, provider: str) -> DoctorCheck:
    import numpy as np

    from lanai.bundled import bundled_model_dir

    path = bundled_model_dir() / "model.onnx"
    try:
        session = ort.InferenceSession(str(path), providers=[provider])  # type: ignore[attr-defined]
        active = session.get_providers()[0]
        if active != provider:
            raise RuntimeError(f"the session runs on {active} instead")
        spec = session.get_inputs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        began = time.perf_counter()
        session.run(None, {spec.name: np.zeros(shape, np.float32)})
        took = (time.perf_counter() - began) * 1000
    except Exception as exc:  # any of onnxruntime's error classes, or the driver's
        return DoctorCheck(f"accelerator {provider}", "fail", f"does not run the bundled model: {exc}",
                           "check the driver and the runtime's libraries (CUDA, cuDNN, TensorRT versions)")  # fmt: skip
    return DoctorCheck(f"accelerator {provider}", "ok", f"runs the bundled model ({took:.1f} ms first run)")


def check_delegates(settings: Settings) -> DoctorCheck:
    """Whether each configured LiteRT delegate library loads."""
    names = settings.litert_delegates
    if not names:
        return DoctorCheck("litert delegates", "skip", "none configured (.tflite models run on XNNPACK)")
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        return DoctorCheck("litert delegates", "warn", f"configured ({', '.join(names)}) but LiteRT is not "
                           "installed", "pip install 'lanai[litert]'")  # fmt: skip
    failed = []
    for name in names:
        try:
            interpreter.load_delegate(name)
        except (ValueError, OSError, RuntimeError) as exc:
            failed.append(f"{name} ({' '.join(str(exc).split())})")
    if failed:
        return DoctorCheck("litert delegates", "warn", "do not load, models fall back to the CPU: " +
                           "; ".join(failed), "install the delegate's library and driver (e.g. libedgetpu1-std), "
                           "or check the path in litert_delegates")  # fmt: skip
    return DoctorCheck("litert delegates", "ok", "load: " + ", ".join(names))


# -- the box ------------------------------------------------------------------------------------------


def check_device(settings: Settings, options: DoctorOptions) -> list[DoctorCheck]:
    """Temperature, throttling, memory and disk, read as the server's device monitor reads them."""
    store = _existing(settings.home)
    limits = ThermalLimits(settings.thermal_soft_c, settings.thermal_hard_c)
    now = DeviceMonitor(limits, root=settings.sensors_root, store=store).sample()
    return [_temperature(now, limits), _throttling(now), _memory(now, options), _disk(now, store, options)]


def _temperature(now: Condition, limits: ThermalLimits) -> DoctorCheck:
    fix = "cool the box: a fan or heatsink, airflow, out of the sun; check the case"
    if now.temperature_c is None:
        return DoctorCheck("temperature", "skip", "not available (no thermal sensor)")
    text = f"{now.temperature_c:.1f} °C (soft limit {limits.soft_c:g}, hard {limits.hard_c:g})"
    if now.temperature_c >= limits.hard_c:
        return DoctorCheck("temperature", "fail", text + ": the server refuses work this hot", fix)
    if now.temperature_c >= limits.soft_c:
        return DoctorCheck("temperature", "warn", text + ": the server admits less work", fix)
    return DoctorCheck("temperature", "ok", text)


def _throttling(now: Condition) -> DoctorCheck:
    if now.throttled is None:
        return DoctorCheck("throttling", "skip", "not available (no Raspberry Pi firmware report)")
    if "under-voltage" in now.throttled:
        return DoctorCheck("throttling", "fail", "under-voltage now: " + ", ".join(now.throttled),
                           "use the official power supply (5 V 5 A for a Pi 5) and a short, thick cable")  # fmt: skip
    if now.throttled:
        return DoctorCheck("throttling", "warn", "now: " + ", ".join(now.throttled),
                           "cool the box (a fan or the active cooler); check the power supply")  # fmt: skip
    return DoctorCheck("throttling", "ok", "none")


def _memory(now: Condition, options: DoctorOptions) -> DoctorCheck:
    text = f"{now.memory_available_mb:.0f} MB available"
    fix = "stop other programs, use smaller or quantised models, or add swap (zram)"
    if now.memory_available_mb < options.fail_memory_mb:
        return DoctorCheck("memory", "fail", text, fix)
    if now.memory_available_mb < options.warn_memory_mb:
        return DoctorCheck("memory", "warn", text, fix)
    return DoctorCheck("memory", "ok", text)


def _disk(now: Condition, store: Path, options: DoctorOptions) -> DoctorCheck:
    free = now.disk_free_mb if now.disk_free_mb is not None else shutil.disk_usage(store).free / 2**20
    text = f"{free:.0f} MB free at {store}"
    fix = "remove old versions (lanai models remove NAME VERSION) or other files, or move the store (--home)"
    if free < options.fail_disk_mb:
        return DoctorCheck("disk", "fail", text, fix)
    if free < options.warn_disk_mb:
        return DoctorCheck("disk", "warn", text, fix)
    return DoctorCheck("disk", "ok", text)


def _existing(path: Path) -> Path:
    """``path``, or its nearest folder that exists (a store not made yet lives on its parent's disk)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_governor(root: Path) -> DoctorCheck:
    """The CPU frequency governors: ``ondemand``, ``powersave`` (or ``conservative``) cost latency."""
    found: dict[str, list[str]] = {}
    for path in sorted((root / "sys/devices/system/cpu").glob("cpu*/cpufreq/scaling_governor")):
        try:
            found.setdefault(path.read_text().strip(), []).append(path.parent.parent.name)
        except OSError:
            continue
    if not found:
        return DoctorCheck("governor", "skip", "not available (no cpufreq: a VM or container)")
    text = ", ".join(f"{name} on {len(cpus)} core(s)" for name, cpus in found.items())
    slow = [name for name in found if name in _SLOW_GOVERNORS]
    if slow:
        return DoctorCheck("governor", "warn", f"{text}: {', '.join(slow)} ramps the clock up late, "
                           "adding latency to each request", _GOVERNOR_FIX)  # fmt: skip
    return DoctorCheck("governor", "ok", text)


# -- the network ----------------------------------------------------------------------------------------


def check_network() -> tuple[dict[str, tuple[str, ...]], DoctorCheck]:
    """Interfaces that are up, with their addresses; a warning if only loopback is."""
    import psutil

    stats = psutil.net_if_stats()
    interfaces: dict[str, tuple[str, ...]] = {}
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        if name in stats and not stats[name].isup:
            continue
        found = tuple(a.address.split("%")[0] for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6))
        if found:
            interfaces[name] = found
    lan = {name: found for name, found in interfaces.items() if not all(_loopback(a) for a in found)}
    if not lan:
        return interfaces, DoctorCheck("network", "warn", "no interface but loopback is up: the LAN cannot "
                                       "reach this box", "connect the network (cable or Wi-Fi) and check it "
                                       "with ip addr")  # fmt: skip
    text = "; ".join(f"{name} {' '.join(found)}" for name, found in lan.items())
    return interfaces, DoctorCheck("network", "ok", text)


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def check_port(settings: Settings, timeout: float = 2.0) -> DoctorCheck:
    """A lanai server answering ``/health/live`` on the port, else whether ``lanai serve`` could bind it."""
    port = settings.port
    if port == 0:
        return DoctorCheck("port", "skip", "port 0: the server picks a free one")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError:
        return _try_bind(settings.host, port)
    tls = settings.tls or settings.mtls or settings.tls_certfile is not None
    answer = _live(host, port, tls, timeout)
    if answer == 200:
        return DoctorCheck("port", "ok", f"a server answers GET /health/live on {host}:{port}")
    if answer is not None and tls:  # 401/403: mTLS without a client certificate still says it is up
        return DoctorCheck("port", "ok", f"a server answers on {host}:{port} (HTTP {answer} without a certificate)")
    return DoctorCheck("port", "fail", f"{host}:{port} is taken, and not by a lanai server that answers",
                       f"find it with: sudo ss -ltnp 'sport = :{port}'; stop it, or set another port")  # fmt: skip


def _live(host: str, port: int, tls: bool, timeout: float) -> int | None:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only asking whether it is alive
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health/live")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _try_bind(host: str, port: int) -> DoctorCheck:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EACCES:
                fix = "use a port above 1023, or give the service CAP_NET_BIND_SERVICE"
            elif exc.errno == errno.EADDRNOTAVAIL:
                fix = "the host setting names an address this box does not have: fix host"
            else:
                fix = f"find what holds it: sudo ss -ltnp 'sport = :{port}'; stop it, or set another port"
            return DoctorCheck("port", "fail", f"no server answers on {port} and it cannot be bound: "
                               f"{exc.strerror or exc}", fix)  # fmt: skip
    return DoctorCheck("port", "ok", f"no server runs; {host}:{port} is free for lanai serve")
