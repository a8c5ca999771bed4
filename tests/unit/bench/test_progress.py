from __future__ import annotations

import io

from lanai.bench.progress import ProgressBar, Snapshot


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_is_drawn_off_a_terminal_or_when_disabled() -> None:
    pipe = io.StringIO()
    ProgressBar(pipe)(Snapshot(1.0, 10, 0, finished=True))
    terminal = Terminal()
    ProgressBar(terminal, enabled=False)(Snapshot(1.0, 10, 0, finished=True))
    assert pipe.getvalue() == "" and terminal.getvalue() == ""


def test_draws_on_one_line_and_ends_it_when_finished() -> None:
    terminal = Terminal()
    bar = ProgressBar(terminal, min_interval=0.0)
    bar(Snapshot(0.0, 0, 0, warming_up=True, total_seconds=10.0))
    bar(Snapshot(1.0, 100, 0, total_seconds=10.0))
    bar(Snapshot(2.0, 300, 2, total_seconds=10.0))
    bar(Snapshot(10.0, 1500, 5, finished=True, total_seconds=10.0))
    out = terminal.getvalue()
    assert out.count("\r") == 4 and out.endswith("\n") and out.count("\n") == 1
    lines = out.split("\r")[1:]
    assert "warming up" in lines[0]
    assert "2.0/10.0 s" in lines[2] and "300 ok" in lines[2] and "202 req/s" in lines[2] and "2 err" in lines[2]
    assert lines[3].startswith("[" + "#" * 20 + "]") and "150 req/s" in lines[3]


def test_draws_at_most_every_min_interval() -> None:
    terminal = Terminal()
    bar = ProgressBar(terminal, min_interval=60.0)
    for i in range(1, 50):
        bar(Snapshot(i * 0.01, i, 0, total_requests=100))
    assert terminal.getvalue().count("\r") == 1


def test_render_in_requests_mode() -> None:
    text = ProgressBar(Terminal()).render(Snapshot(1.5, 40, 10, total_requests=100))
    assert text.startswith("[##########----------]") and "50/100 req" in text and "1.5 s" in text
