"""What the MCP client lets through of a server's answers: a resource read cut to what a response can carry."""

from __future__ import annotations

import base64

from shared.mcp_client import capped_resource


def test_a_resource_within_the_cap_is_answered_whole() -> None:
    result = {"contents": [{"uri": "demo://a", "mimeType": "text/plain", "text": "small"}]}

    assert capped_resource(result, 1024) == {**result, "truncated": False}


def test_a_long_text_is_cut_where_the_budget_ends_and_later_contents_are_left_out() -> None:
    blob = base64.b64encode(b"\x00" * 600).decode()
    result = {
        "contents": [
            {"uri": "demo://text", "mimeType": "text/plain", "text": "é" * 2000},
            {"uri": "demo://blob", "mimeType": "application/octet-stream", "blob": blob},
        ]
    }

    capped = capped_resource(result, 1000)

    assert capped["truncated"] is True
    (text,) = capped["contents"]
    assert text["uri"] == "demo://text"
    assert 0 < len(text["text"].encode()) <= 1000
    assert set(text["text"]) == {"é"}  # never half a character


def test_a_blob_that_does_not_fit_is_left_out_not_cut() -> None:
    blob = base64.b64encode(b"\x01" * 3000).decode()
    result = {"contents": [{"uri": "demo://small", "text": "ok"}, {"uri": "demo://blob", "blob": blob}]}

    capped = capped_resource(result, 1000)

    assert capped == {"contents": [{"uri": "demo://small", "text": "ok"}], "truncated": True}
