"""The .deb from packaging/build-deb.sh (dh-virtualenv), installed with dpkg into a clean Debian chroot.

Never onto this machine: the package goes into a copy of a debootstrapped bookworm amd64 minbase root
(packaging/bookworm-rootfs.sh), and everything runs there through chroot(8). Both the .deb (keyed by a hash
of what goes into it) and the pristine root are cached under ${LANAI_TEST_CACHE:-~/.cache/lanai-tests}.
Cold: about 1 min 15 s for the .deb and 1 min for debootstrap (network); warm: well under a minute.

What is verified: dpkg installs it (twice: the postinst is idempotent), /opt/lanai/bin/lanai runs, the system
user exists, the unit is installed and enabled and passes systemd-analyze verify, the installed server
answers a classify request with the bundled model as that user, and remove then purge leave no process
and no /opt/lanai or store. Not here: systemd starting and stopping the unit (no systemd as PID 1; the
postinst starts it only under /run/systemd/system, and prerm's stop is debhelper's deb-systemd-invoke).
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import encode, photo

CHECKOUT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LANAI_TEST_CACHE", "~/.cache/lanai-tests")).expanduser()
ROOTFS_NAME = "debian-bookworm-amd64-minbase-python3"
# what the package is built from: its hash keys the cached .deb
PACKAGED = ("pyproject.toml", "README.md", "src", "packaging", "deploy/lanai.service")
CAT_WORDS = ("cat", "tabby", "tiger", "lynx")

pytestmark = pytest.mark.slow


def needs(*commands: str) -> None:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("the package test builds and runs an amd64 Debian root")
    if os.geteuid() != 0:
        pytest.skip("dpkg into a chroot needs root")
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: apt-get install dpkg-dev debhelper dh-virtualenv debootstrap")


def content_hash() -> str:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *PACKAGED],
        cwd=CHECKOUT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    digest = hashlib.sha256()
    for name in sorted(n for n in listed if n):
        path = CHECKOUT / os.fsdecode(name)
        if path.is_file():
            digest.update(name + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def cached_deb() -> Path:
    out = CACHE / "deb" / content_hash()
    found = sorted(out.glob("lanai_*.deb"))
    if not found:
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([str(CHECKOUT / "packaging" / "build-deb.sh"), str(partial)], check=True, timeout=1200)
        partial.rename(out)
        found = sorted(out.glob("lanai_*.deb"))
    (deb,) = found
    return deb


def cached_rootfs() -> Path:
    root = CACHE / ROOTFS_NAME
    if not root.is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(CHECKOUT / "packaging" / "bookworm-rootfs.sh"), str(root)], check=True, timeout=1200)
    return root


def in_root(root: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["chroot", str(root), *command], capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip
    assert not check or done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def processes_in(root: Path) -> list[int]:
    """Processes whose root directory is the chroot's."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == str(root):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch copy of the clean root, with the .deb installed."""
    needs("chroot", "unshare", "debootstrap", "dpkg-buildpackage", "dh_virtualenv", "git")
    deb = cached_deb()
    scratch = tmp_path_factory.mktemp("deb") / "root"
    subprocess.run(["cp", "-a", str(cached_rootfs()), str(scratch)], check=True)
    shutil.copy(deb, scratch / "tmp" / deb.name)
    in_root(scratch, "dpkg", "-i", f"/tmp/{deb.name}")
    yield scratch
    for pid in processes_in(scratch):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(scratch, ignore_errors=True)


def test_dpkg_installs_the_venv_and_a_reinstall_changes_nothing(root: Path) -> None:
    (deb,) = (root / "tmp").glob("lanai_*.deb")
    in_root(root, "dpkg", "-i", f"/tmp/{deb.name}")  # postinst again: the user exists, the store too
    assert "ii  lanai" in in_root(root, "dpkg", "-l", "lanai").stdout
    done = in_root(root, "/opt/lanai/bin/lanai", "--version")
    version = done.stdout + done.stderr
    assert re.search(r"\b0\.\d+\.\d+", version), version
    # the venv runs on the root's own Python, not on the build machine's paths
    assert os.readlink(root / "opt/lanai/bin/python3") == "/usr/bin/python3"
    where = in_root(root, "/opt/lanai/bin/python", "-c", "import lanai, onnxruntime; print(lanai.__file__)").stdout
    assert where.startswith("/opt/lanai/lib/python3")


def test_the_system_user_and_its_store(root: Path) -> None:
    name, _, uid, gid, _, home, shell = in_root(root, "getent", "passwd", "lanai").stdout.strip().split(":")
    assert (home, shell) == ("/var/lib/lanai", "/usr/sbin/nologin") and int(uid) < 1000
    assert in_root(root, "getent", "group", "lanai").stdout.split(":")[2] == gid
    store = (root / "var/lib/lanai").stat()
    assert (store.st_uid, store.st_gid, oct(store.st_mode & 0o777)) == (int(uid), int(gid), "0o750")
    assert in_root(root, "sh", "-c", "getent passwd | grep -c '^lanai:'").stdout.strip() == "1"


def test_the_unit_is_installed_enabled_and_verifies(root: Path, tmp_path: Path) -> None:
    unit = root / "lib/systemd/system/lanai.service"
    assert unit.read_text(encoding="utf-8") == (CHECKOUT / "deploy" / "lanai.service").read_text(encoding="utf-8")
    wanted = root / "etc/systemd/system/multi-user.target.wants/lanai.service"
    assert os.readlink(wanted) == "/lib/systemd/system/lanai.service"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # systemd's parser on the host, on the installed unit with its command pointing into the chroot
    checked = tmp_path / "lanai.service"
    checked.write_text(
        unit.read_text(encoding="utf-8").replace("/opt/lanai/bin/lanai", str(root / "opt/lanai/bin/lanai")),
        encoding="utf-8",
    )
    done = subprocess.run([analyze, "verify", "--man=no", str(checked)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_the_installed_server_classifies_a_photo_as_the_lanai_user(root: Path) -> None:
    # its own mount namespace: /proc and /sys for the chroot vanish with the server
    script = (
        f'mount -t proc proc "{root}/proc" && mount -t sysfs sysfs "{root}/sys" && exec chroot --userspec=lanai:lanai '
        f'"{root}" env -i PATH=/usr/bin:/bin LANAI_HOME=/var/lib/lanai /opt/lanai/bin/lanai serve '
        "--host 127.0.0.1 --port 0 --no-grpc --no-discovery"
    )
    server = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], stderr=subprocess.PIPE, text=True
    )
    log: list[str] = []
    try:
        assert server.stderr is not None
        url = None
        for line in server.stderr:
            log.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url, "lanai serve exited early:\n" + "".join(log)
        deadline = time.monotonic() + 120
        while httpx.get(url + "/v2/health/ready", timeout=2).status_code != 200:
            assert time.monotonic() < deadline, "not ready in 120 s"
            time.sleep(0.1)
        r = httpx.post(
            url + "/v1/models/efficientnet-lite0/classify",
            content=encode(photo("chelsea")),
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert any(word in r.json()["label"].lower() for word in CAT_WORDS), r.json()
        assert (root / "var/lib/lanai/models/efficientnet-lite0").is_dir()
        assert (root / "var/lib/lanai/models").stat().st_uid == (root / "var/lib/lanai").stat().st_uid
        # SIGTERM, as systemd stops it: drain and exit 0
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
    assert processes_in(root) == []


def test_remove_then_purge_leave_no_process_venv_or_store(root: Path) -> None:
    in_root(root, "dpkg", "--remove", "lanai")
    assert processes_in(root) == []
    assert not (root / "opt/lanai").exists() and not (root / "lib/systemd/system/lanai.service").exists()
    assert (root / "var/lib/lanai").is_dir()  # remove keeps the models; purge does not
    in_root(root, "dpkg", "--purge", "lanai")
    assert processes_in(root) == []
    assert not (root / "var/lib/lanai").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/lanai.service").exists()
    assert in_root(root, "dpkg-query", "-W", "lanai", check=False).returncode != 0
    # the user stays, as Debian leaves system users (files elsewhere may still be theirs)
    assert in_root(root, "getent", "passwd", "lanai", check=False).returncode == 0
