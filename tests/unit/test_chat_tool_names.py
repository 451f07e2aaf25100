"""What chat's tool runner shows the model: tool names every provider accepts, results as text, and what the
reply's metadata keeps of its tool calls."""

from __future__ import annotations

import json
import re

from functions.chat.tools import (
    STORED_RESULT_BYTES,
    STORED_TOOL_CALLS_BYTES,
    content_for_model,
    model_tool_names,
    stored_tool_calls,
)

VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_tools_are_named_server__tool_with_other_characters_made_valid() -> None:
    names = model_tool_names([("everything", "get-sum"), ("time", "get_current_time"), ("my files", "read.file/v2")])
    assert names == ["everything__get-sum", "time__get_current_time", "my_files__read_file_v2"]


def test_long_and_colliding_names_are_cut_and_told_apart_the_same_way_every_time() -> None:
    pairs = [("files", "a.b"), ("files", "a_b"), ("files", "a/b"), ("s" * 40, "t" * 40), ("s" * 40, "t" * 41)]
    names = model_tool_names(pairs)
    assert names == model_tool_names(pairs)
    assert len(set(names)) == len(names)
    assert all(VALID.match(name) for name in names)
    assert names[0] == "files__a_b"
    assert names[1].startswith("files__a_b_")
    assert names[2].startswith("files__a_b_")
    assert all(len(name) == 64 for name in names[3:])
    assert model_tool_names([("", "")]) == ["__"]


def test_a_result_reads_as_its_text_with_other_blocks_summarised() -> None:
    result = {
        "content": [
            {"type": "text", "text": "first"},
            {"type": "image", "mimeType": "image/png", "data": "iVBOR..."},
            {"type": "resource_link", "uri": "file:///report.pdf", "name": "report"},
            {"type": "resource", "resource": {"uri": "demo://1", "text": "embedded text"}},
            {"type": "resource", "resource": {"uri": "demo://2", "blob": "AAAA"}},
            {"type": "text", "text": "last"},
        ],
        "structuredContent": {"ignored": True},
    }
    assert content_for_model(result) == (
        "first\n[image image/png]\n[resource file:///report.pdf]\nembedded text\n[resource demo://2]\nlast"
    )


def test_structured_content_is_the_text_when_there_is_none() -> None:
    assert content_for_model({"content": [], "structuredContent": {"sum": 42}}) == '{"sum": 42}'
    image_only = {"content": [{"type": "image", "mimeType": "image/jpeg"}], "structuredContent": {"w": 1}}
    assert content_for_model(image_only) == '{"w": 1}\n[image image/jpeg]'


def test_stored_tool_calls_stay_within_their_budget_however_many_there_are() -> None:
    def call(number: int, size: int) -> dict[str, object]:
        return {"toolCallId": f"call_{number}", "toolName": "files__read", "toolInput": {"path": "p" * size},
                "content": "x" * size, "isError": False}  # fmt: skip

    one = stored_tool_calls([call(1, 100_000)])["toolCalls"]
    assert len(one[0]["content"].encode()) <= STORED_RESULT_BYTES + 100
    assert "100,000 bytes in all" in one[0]["content"]
    assert one[0]["toolInput"] != {"path": "p" * 100_000}

    small = [call(1, 10)]
    assert stored_tool_calls(small) == {"toolCalls": small}
    assert stored_tool_calls([]) == {}

    many = stored_tool_calls([call(number, 10_000) for number in range(250)])
    assert len(json.dumps(many).encode()) <= STORED_TOOL_CALLS_BYTES
    assert [entry["toolCallId"] for entry in many["toolCalls"]] == [f"call_{number}" for number in range(100)]
    assert many["toolCallsOmitted"] == 150
    assert many["toolCalls"][0]["content"].startswith("xxx")
    assert many["toolCalls"][-1]["content"] == "[not kept]"
