"""A real OCI registry on loopback for the tests: Debian's ``docker-registry`` (CNCF distribution 2.8),
with TLS from a CA made here and htpasswd users when asked. Skips when the package is missing
(``apt-get install docker-registry``; ``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lanai.security.certs import TlsFiles, init_authority

BINARY = "/usr/bin/docker-registry"


@dataclass(frozen=True)
class Registry:
    host: str
    """host:port, as a reference writes it."""
    ca: Path | None
    """The CA that signed its certificate, when it serves TLS."""
    root: Path
    """Its storage folder."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(folder: Path, *, tls: bool = False, users: dict[str, str] | None = None) -> tuple[Registry, subprocess.Popen[bytes]]:
    if not Path(BINARY).exists() and shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    lines = [
        "version: 0.1",
        "log: {level: error, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, delete: {{enabled: true}}}}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: lanai-tests",
    ]
    ca = None
    if tls:
        files = TlsFiles(folder / "tls")
        init_authority(files, names=["localhost"], addresses=["127.0.0.1"])
        lines.append(f"  tls: {{certificate: {files.server_cert}, key: {files.server_key}}}")
        ca = files.ca_cert
    if users:
        import bcrypt

        htpasswd = folder / "htpasswd"
        htpasswd.write_text("".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for user, password in users.items()
        ))  # fmt: skip
        lines.append(f"auth: {{htpasswd: {{realm: lanai-tests, path: {htpasswd}}}}}")
    config = folder / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = folder / "registry.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen([shutil.which("docker-registry") or BINARY, "serve", str(config)],
                                stdout=subprocess.DEVNULL, stderr=out)  # fmt: skip
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/v2/"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                httpx.get(url, verify=ssl.create_default_context(cafile=str(ca)) if ca else True, timeout=1)
                return Registry(f"127.0.0.1:{port}", ca, folder / "data"), proc
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not answer within 20 s")
    except BaseException:
        stop_registry(proc)  # never left running behind a failed start
        raise


def stop_registry(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
