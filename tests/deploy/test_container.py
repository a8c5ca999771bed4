"""deploy/Dockerfile built and run with rootful Podman (daemonless), on a base image made here.

No registry is reachable, so python:3.11-slim-trixie cannot be pulled. The stand-in: the debootstrapped
Debian 12 minbase root of tests/deploy/test_deb.py (packaging/bookworm-rootfs.sh) with Debian's Python 3.11
and a venv in /usr/local (python and pip on PATH, as in the official image), imported with
``podman import`` and tagged python:3.11-slim-trixie in a Podman storage of its own under
${LANAI_TEST_CACHE:-~/.cache/lanai-tests}/podman (the host's storage never sees it). The Dockerfile is
built unchanged with --pull=never. So this verifies the Dockerfile's steps, the image's user, its
read-only root filesystem, the HEALTHCHECK and the drain on SIGTERM; not the official base image itself.

This VM needs three fallbacks, found by trying: crun fails ("cgroups in hybrid mode not supported, drop all
controllers from cgroupv2": cgroup v1 with a v2 mount beside it), so the runtime is runc (Debian package
runc); cgroupfs instead of systemd (no systemd); and rlimits below the VM's hard limits (Podman's defaults,
nofile 1048576, fail with "setrlimit RLIMIT_NOFILE: Operation not permitted").
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import encode, photo

CHECKOUT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LANAI_TEST_CACHE", "~/.cache/lanai-tests")).expanduser()
ROOTFS = CACHE / "debian-bookworm-amd64-minbase-python3"
BASE = "docker.io/library/python:3.11-slim-trixie"  # what the Dockerfile names, here a local stand-in
BASE_VERSION = "1"  # bump when the stand-in's recipe changes
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
CAT_WORDS = ("cat", "tabby", "tiger", "lynx")
HOST_CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"

pytestmark = pytest.mark.slow


def run(*command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


class Podman:
    """Podman on a storage of the tests' own (its run-time state in /tmp: Podman wants the same path each time)."""

    def __init__(self) -> None:
        self.storage = CACHE / "podman" / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        runroot = Path("/tmp") / f"lanai-tests-podman-{hashlib.sha256(bytes(self.storage)).hexdigest()[:8]}"
        self.base = ["podman", "--root", str(self.storage), "--runroot", str(runroot), "--cgroup-manager", "cgroupfs"]

    def release(self) -> None:
        """Unmount what Podman left mounted in its storage (its overlay directory's private bind mount)."""
        overlay = str(self.storage / "overlay")
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            if any(line.split()[1] == overlay for line in mounts):
                subprocess.run(["umount", overlay], capture_output=True)

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run(*self.base, *args, timeout=timeout)

    def drop_older_images(self, keep: str) -> None:
        """Remove the images earlier checkouts built (one per context hash, about 1 GB each) and their layers."""
        listed = self("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/lanai").stdout.split()
        stale = [name for name in listed if name != keep]
        if stale:
            subprocess.run([*self.base, "rmi", "--force", *stale], capture_output=True)
        subprocess.run([*self.base, "image", "prune", "--force"], capture_output=True)

    def has_image(self, name: str) -> bool:
        return subprocess.run([*self.base, "image", "exists", name], capture_output=True).returncode == 0


def make_base(podman: Podman, scratch: Path) -> None:
    """The stand-in for python:3.11-slim: Debian's Python 3.11 with a venv in /usr/local."""
    label = f"lanai.test.base={BASE_VERSION}"
    if podman.has_image(BASE) and label in podman("image", "inspect", "--format", "{{.Labels}}", BASE).stdout.replace(
        ":", "="
    ):
        return
    if not ROOTFS.is_dir():
        ROOTFS.parent.mkdir(parents=True, exist_ok=True)
        run(str(CHECKOUT / "packaging" / "bookworm-rootfs.sh"), str(ROOTFS), timeout=1200)
    root = scratch / "base"
    run("cp", "-a", str(ROOTFS), str(root))
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"]
    run("chroot", str(root), *env, "apt-get", "update", "-qq")
    run("chroot", str(root), *env, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3-venv")
    run("chroot", str(root), *env, "python3", "-m", "venv", "/usr/local")
    run("chroot", str(root), *env, "apt-get", "clean")
    run("sh", "-c", f'rm -rf "{root}"/var/lib/apt/lists/* "{root}"/etc/resolv.conf')
    tarball = scratch / "base.tar"
    run("tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), ".")
    shutil.rmtree(root)
    podman(
        "import",
        "--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change", "ENV LANG=C.UTF-8",
        "--change", f"LABEL lanai.test.base={BASE_VERSION}",
        "--change", 'CMD ["python3"]',
        str(tarball), BASE,
    )  # fmt: skip
    tarball.unlink()


def context_hash() -> str:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
         "deploy/Dockerfile", "pyproject.toml", "README.md", "src"],
        cwd=CHECKOUT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    digest = hashlib.sha256(BASE_VERSION.encode())
    for name in sorted(n for n in listed if n):
        path = CHECKOUT / os.fsdecode(name)
        if path.is_file():
            digest.update(name + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Podman, str]]:
    if platform.system() != "Linux" or platform.machine() != "x86_64" or os.geteuid() != 0:
        pytest.skip("the container test runs rootful Podman on amd64")
    missing = [c for c in ("podman", "runc", "debootstrap", "chroot", "git") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: apt-get install podman runc debootstrap")
    scratch = tmp_path_factory.mktemp("container")
    podman = Podman()
    make_base(podman, scratch)
    tag = f"localhost/lanai:test-{context_hash()}"
    if not podman.has_image(tag):
        # This network reaches PyPI through a TLS proxy with its own CA: the build's RUN steps see the host's
        # CA bundle and a pip.conf naming it (build-time mounts, not committed to the image).
        pip_conf = scratch / "pip.conf"
        pip_conf.write_text("[global]\ncert = /run/lanai-host-ca.crt\n", encoding="utf-8")
        trust = ["-v", f"{HOST_CA}:/run/lanai-host-ca.crt:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]
        podman(
            "build", "--runtime", "runc", "--pull=never", "--format", "docker", "--network", "host", *LIMITS, *trust,
            "-f", str(CHECKOUT / "deploy" / "Dockerfile"), "-t", tag, str(CHECKOUT),
            timeout=1800,
        )  # fmt: skip
    podman.drop_older_images(keep=tag)
    yield podman, tag
    podman.release()
    # the bridge that -p made (CNI leaves it behind), once no container is attached to it
    bridge = Path("/sys/class/net/cni-podman0")
    if bridge.is_dir() and not any((bridge / "brif").iterdir()):
        subprocess.run(["ip", "link", "delete", "cni-podman0"], capture_output=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_image_serves_a_classify_request_read_only_as_10001(image: tuple[Podman, str]) -> None:
    podman, tag = image
    port = free_port()
    name = f"lanai-test-{os.getpid()}"
    podman(
        "run", "--runtime", "runc", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", "--read-only", *LIMITS,
        tag, "serve", "--no-grpc", "--no-discovery",
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            assert state == "running" and time.monotonic() < deadline, podman("logs", name).stderr[-3000:]
            time.sleep(0.2)
        r = httpx.post(
            url + "/v1/models/efficientnet-lite0/classify",
            content=encode(photo("chelsea")),
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert any(word in r.json()["label"].lower() for word in CAT_WORDS), r.json()
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        # the image's own HEALTHCHECK command, run now (exit 0: healthy)
        podman("healthcheck", "run", name)
        # docker stop: SIGTERM, the server drains and exits 0 well before the 20 s kill
        podman("stop", "--time", "20", name)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    finally:
        subprocess.run([*podman.base, "rm", "--force", "--volumes", name], capture_output=True)
