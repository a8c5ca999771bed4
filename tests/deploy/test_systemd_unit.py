"""deploy/lanai.service, checked by systemd's own parser (``systemd-analyze verify``, which needs no running
systemd): every directive parses, the command exists, and the restart policy that brings a crashed server
back into the same state (``Restart=on-failure``; the state itself is tested in
tests/reliability/test_faults.py) is there. This machine has no systemd as PID 1, so the restart itself is
not exercised here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lanai.config import Settings

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "lanai.service"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_parses_and_restarts_on_failure(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd; .ci/run installs it)")
    lanai = Path(sys.executable).parent / "lanai"
    assert lanai.is_file(), "the lanai command is not installed beside this Python"
    text = UNIT.read_text(encoding="utf-8")
    unit = tmp_path / "lanai.service"  # the same unit, its command where this checkout installed it
    unit.write_text(text.replace("ExecStart=/opt/lanai/bin/lanai serve", f"ExecStart={lanai} serve"), encoding="utf-8")
    done = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stdout + done.stderr

    given = directives(text)
    assert given["Restart"] == ["on-failure"] and given["KillSignal"] == ["SIGTERM"]
    # systemd must give a SIGTERMed server time to finish what it has before it kills it
    assert float(given["TimeoutStopSec"][0]) > Settings().shutdown_timeout
    assert given["Environment"].count("LANAI_HOME=/var/lib/lanai") == 1 and given["StateDirectory"] == ["lanai"]
    # mDNS and the certificate's addresses list the interfaces: that takes a netlink socket
    assert "AF_NETLINK" in given["RestrictAddressFamilies"][0].split()


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    """The check above can fail: systemd's parser reports a restart policy it does not know."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    lanai = Path(sys.executable).parent / "lanai"
    text = UNIT.read_text(encoding="utf-8").replace("ExecStart=/opt/lanai/bin/lanai serve", f"ExecStart={lanai} serve")
    unit = tmp_path / "lanai.service"
    unit.write_text(text.replace("Restart=on-failure", "Restart=sometimes"), encoding="utf-8")
    done = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert "sometimes" in done.stdout + done.stderr
