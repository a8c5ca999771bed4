"""The tool-call reader (lanai.tasks.tool_calls.CallReader): the same calls and content whatever pieces the
text arrives in, for each family's way of writing calls; and what is not a call stays content."""

from __future__ import annotations

import json

import pytest

from lanai.tasks.tool_calls import GENERIC, HERMES, LLAMA3, MISTRAL, CallArguments, CallReader, CallStart, Content, Family


def read(family: Family, pieces: list[str], parallel: bool = True) -> tuple[str, list[tuple[str, str]], list]:
    reader = CallReader(family, parallel=parallel)
    events = [e for piece in pieces for e in reader.feed(piece)] + reader.finish()
    content = "".join(e.text for e in events if isinstance(e, Content))
    calls: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, CallStart):
            assert event.index not in calls and event.id  # one start per call, before its arguments
            calls[event.index] = [event.name, ""]
        elif isinstance(event, CallArguments):
            calls[event.index][1] += event.text
    return content, [(name, args) for name, args in calls.values()], events


CASES = [
    (HERMES, 'Checking.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Paris", "days": [1, 2]}}\n</tool_call>'
             '\n<tool_call>\n{"name": "time", "arguments": {"tz": "Europe/Paris"}}\n</tool_call>',
     "Checking.\n", [("weather", '{"city": "Paris", "days": [1, 2]}'), ("time", '{"tz": "Europe/Paris"}')]),
    (LLAMA3, '{"name": "weather", "parameters": {"city": "Pa\\"ris {x}"}}', "", [("weather", '{"city": "Pa\\"ris {x}"}')]),
    (LLAMA3, '<|python_tag|>{"name": "weather", "parameters": {}}', "", [("weather", "{}")]),
    (MISTRAL, '[{"name": "a", "arguments": {"q": [1, {"b": "}]"}]}}, {"name": "b", "arguments": {}}]', "",
     [("a", '{"q": [1, {"b": "}]"}]}'), ("b", "{}")]),
    (MISTRAL, '[TOOL_CALLS][{"name": "a", "arguments": {"x": 1}, "id": "abcdefghi"}]', "", [("a", '{"x": 1}')]),
    (GENERIC, 'Sure <tool_call>{"name": "weather", "arguments": {"city": "Oslo"}}</tool_call>', "Sure ",
     [("weather", '{"city": "Oslo"}')]),
    (GENERIC, "No call here, only < and <tool and {braces}.", "No call here, only < and <tool and {braces}.", []),
    (LLAMA3, "The answer is {not a call}.", "The answer is {not a call}.", []),
    (HERMES, '<tool_call>{"arguments": {"x": 1}, "name": "late"}</tool_call>', "", [("late", '{"x": 1}')]),
    (HERMES, '<tool_call>{"name": "s", "arguments": "{\\"x\\": 1}"}</tool_call>', "", [("s", '{"x": 1}')]),
]


@pytest.mark.parametrize(("family", "text", "content", "calls"), CASES)
def test_any_split_reads_the_same(family: Family, text: str, content: str, calls: list) -> None:
    whole = read(family, [text])
    assert whole[:2] == (content, calls)
    for size in (1, 2, 3, 7):
        assert read(family, [text[i : i + size] for i in range(0, len(text), size)])[:2] == whole[:2], size
    for name, arguments in calls:  # the arguments are the model's JSON text
        json.loads(arguments)


def test_arguments_arrive_in_pieces_after_the_name() -> None:
    text = '<tool_call>{"name": "weather", "arguments": {"city": "Paris"}}</tool_call>'
    _, _, events = read(HERMES, list(text))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "CallStart" and kinds.count("CallArguments") > 5


def test_one_call_only_when_parallel_calls_are_off() -> None:
    text = '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {}}</tool_call>'
    assert read(HERMES, [text], parallel=False)[1] == [("a", "{}")]
    assert read(HERMES, [text])[1] == [("a", "{}"), ("b", "{}")]


def test_a_call_cut_short_keeps_what_was_read_and_held_text_comes_out_at_the_end() -> None:
    assert read(HERMES, ['<tool_call>{"name": "a", "argum'])[1] == [("a", "")]
    assert read(HERMES, ["All done <tool"])[0] == "All done <tool"
