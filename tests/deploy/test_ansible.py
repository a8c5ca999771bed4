"""deploy/ansible/rolling-update.yml: syntax-checked by ansible-playbook, linted by ansible-lint (its
strictest "production" profile, offline), and run in check mode on this machine against a real lanai
server on loopback.

The playbook uses ansible.builtin modules only (HAProxy's runtime API through socat), so nothing has
to come from Ansible Galaxy, which this machine cannot reach.

What check mode covers: the variables' checks, the /metrics read and the parse of
lanai_requests_in_flight from a real lanai, and the wait for readiness. What it skips, because
they change things (and a box, a registry and an HAProxy are not here): lanai drain, pull, models
activate, the load request and the socat calls to HAProxy. The regular expression that reads pull's
output is checked on its own against pull's message below.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from support import RunningServer

ANSIBLE = Path(__file__).resolve().parents[2] / "deploy" / "ansible"
PLAYBOOK = ANSIBLE / "rolling-update.yml"
INVENTORY = ANSIBLE / "inventory.example.ini"


def tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is missing: pip install -e '.[test]' (ansible-core, ansible-lint)")
    return found


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        # ansible-lint runs ansible-playbook itself: the venv's, even when the venv is not activated.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "NO_COLOR": "1",
        **env,
    }
    environment.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=environment)


def lint(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run([tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor", str(path)], tmp_path)


def test_syntax_check(tmp_path: Path) -> None:
    result = run([tool("ansible-playbook"), "-i", str(INVENTORY), "--syntax-check", str(PLAYBOOK)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    result = lint(PLAYBOOK, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr


def test_ansible_lint_does_fail_a_careless_copy(tmp_path: Path) -> None:
    """The linter really lints: the same play with short module names and an unguarded command fails."""
    play = yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))
    play[0]["tasks"].append({"name": "careless", "command": "lanai drain"})
    copy = tmp_path / "careless.yml"
    copy.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    result = lint(copy, tmp_path)
    assert result.returncode != 0
    for rule in ("fqcn[action-core]", "no-changed-when", "name[casing]"):
        assert rule in result.stdout, result.stdout


def test_the_inventory_example_parses(tmp_path: Path) -> None:
    result = run([tool("ansible-inventory"), "-i", str(INVENTORY), "--list"], tmp_path)
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert inventory["lanai"]["hosts"] == ["pi-01.lan", "pi-02.lan", "pi-03.lan"]
    assert inventory["haproxy"]["hosts"] == ["lb.lan"]


def test_the_pull_message_parses() -> None:
    """The expression the playbook applies to `lanai pull` output, applied by Python's re (which Ansible's
    regex_search uses) to the message pull prints."""
    play = yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))
    (task,) = [t for t in play[0]["tasks"] if "lanai_pulled" in t.get("ansible.builtin.set_fact", {})]
    expression = re.search(r"regex_search\('(.+?)', ", task["ansible.builtin.set_fact"]["lanai_pulled"]).group(1)
    expression = expression.replace("\\\\", "\\")
    printed = "pulled registry.lan:5000/models/resnet:v7 (sha256:4f2a…) as resnet version 7, inactive\n"
    assert re.search(expression, printed).groups() == ("resnet", "7")


@pytest.mark.parametrize("drain_via", ["lanai", "haproxy"])
def test_check_mode_against_a_real_server(server: RunningServer, tmp_path: Path, drain_via: str) -> None:
    # /health/ready is being added to lanai; until it has landed, the Open Inference Protocol's readiness.
    ready_path = "/health/ready"
    if httpx.get(server.url + ready_path).status_code == 404:  # TODO: drop once /health/ready has landed
        ready_path = "/v2/health/ready"
    extra = {
        "lanai_hosts": "localhost",
        "lanai_url": server.url,
        "lanai_reference": "registry.lan:5000/models/resnet:v7",
        "lanai_drain_via": drain_via,
        "lanai_ready_path": ready_path,
        "lanai_poll_delay": 1,
        "lanai_drain_retries": 5,
        "haproxy_host": "localhost",
        "ansible_become": False,
        "ansible_python_interpreter": sys.executable,
    }
    result = run(
        [
            tool("ansible-playbook"),
            "--check",
            "--connection",
            "local",
            "-i",
            "localhost,",
            "-e",
            json.dumps(extra),
            str(PLAYBOOK),
        ],
        tmp_path,
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The checks and the two waits ran; the nine tasks that change things (or read what they did) did not.
    assert re.search(r"localhost\s*: ok=3 +changed=0 +unreachable=0 +failed=0 +skipped=9", output), output
    assert "TASK [Wait until the box has no request in flight]" in output
    assert "TASK [Wait for the box to be ready]" in output
