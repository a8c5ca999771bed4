"""``<home>/run/lifecycle.json``: unclean exits counted, and where a running server answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lanai.telemetry.lifecycle import Lifecycle, running_url


def test_a_listening_run_is_found_until_it_ends(tmp_path: Path) -> None:
    run = Lifecycle(tmp_path)
    assert running_url(tmp_path) is None  # never started
    run.begin()
    assert running_url(tmp_path) is None  # started, not listening yet
    run.listening("http://127.0.0.1:8080")
    assert running_url(tmp_path) == "http://127.0.0.1:8080"
    run.end()
    assert running_url(tmp_path) is None


def test_a_killed_run_is_not_taken_for_a_running_one_and_counts_as_unclean(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from lanai.telemetry.lifecycle import Lifecycle; "
        "run = Lifecycle(Path(sys.argv[1])); run.begin(); run.listening('http://127.0.0.1:9')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)  # exits without end()
    mark = json.loads((tmp_path / "run" / "lifecycle.json").read_text(encoding="utf-8"))
    assert mark["running"] and mark["pid"] != os.getpid()
    assert running_url(tmp_path) is None  # its process is gone
    again = Lifecycle(tmp_path)
    again.begin()
    assert again.recent(3600) == 1


def test_a_mark_that_is_not_ours_reads_as_no_server(tmp_path: Path) -> None:
    mark = tmp_path / "run" / "lifecycle.json"
    mark.parent.mkdir()
    for text in ("{", "[]", '{"running": true, "url": "http://x"}', '{"running": true, "pid": "1", "url": 5}'):
        mark.write_text(text, encoding="utf-8")
        assert running_url(tmp_path) is None, text
