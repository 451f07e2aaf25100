"""Imports from a Stratus archive, a ChatGPT export and a Claude.ai export, as the user will see them: the
branch they saw, the roles and times they had; bad items reported one by one, bad files refused whole."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest

from functions.jobs.formats import json_stream
from functions.jobs.formats.importers import read_import
from functions.jobs.formats.items import (
    ImportedConversation,
    ImportedItem,
    ImportedMemory,
    ImportedMessage,
    ImportedProject,
    ImportedPrompt,
    ImportFormat,
    RejectedItem,
)
from functions.jobs.formats.limits import MB, ImportLimits
from shared.errors import ValidationFailed
from tests.unit.test_jobs_archive import sample_contexts, write_archive

T0 = 1_709_287_200.0  # 2024-03-01T10:00:00Z


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, tz=UTC)


# ChatGPT ------------------------------------------------------------------------------------------------


def chatgpt_node(  # noqa: PLR0917 - a node reads as a row of the tree
    node_id: str,
    parent: str | None,
    children: list[str],
    role: str | None = None,
    parts: list[Any] | None = None,
    seconds: float | None = None,
    **message: Any,
) -> dict[str, Any]:
    body = None
    if role is not None:
        body = {
            "id": node_id,
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": None if seconds is None else T0 + seconds,
            "update_time": None,
            "content": {"content_type": message.pop("content_type", "text"), "parts": parts or []},
            "status": "finished_successfully",
            "end_turn": True,
            "weight": 1.0,
            "metadata": message.pop("metadata", {}),
            "recipient": message.pop("recipient", "all"),
        }
    return {"id": node_id, "message": body, "parent": parent, "children": children}


def chatgpt_conversation_with_an_edit(title: str = "Arithmetic") -> dict[str, Any]:
    """A conversation as ChatGPT exports it: a root, hidden custom instructions, a question and answer, then
    the second question edited (two sibling branches) and its answer regenerated; the user last saw the edit's
    regenerated answer. One answer used a tool on the way."""
    nodes = [
        chatgpt_node("root", None, ["sys"]),
        chatgpt_node("sys", "root", ["instr"], "system", [""], metadata={"is_visually_hidden_from_conversation": True}),
        chatgpt_node("instr", "sys", ["u1"], "user", ["I like short answers"], 1, content_type="user_editable_context",
                     metadata={"is_visually_hidden_from_conversation": True}),
        chatgpt_node("u1", "instr", ["call"], "user", ["What is 2+2?"], 10),
        chatgpt_node("call", "u1", ["tool"], "assistant", ["print(2+2)"], 11, content_type="code", recipient="python"),
        chatgpt_node("tool", "call", ["a1"], "tool", ["4"], 12, content_type="execution_output"),
        chatgpt_node("a1", "tool", ["u2", "u2-edit"], "assistant", ["It is 4."], 13, metadata={"model_slug": "gpt-4o"}),
        chatgpt_node("u2", "a1", ["a2"], "user", ["And times 3?"], 20),
        chatgpt_node("a2", "u2", [], "assistant", ["12."], 21),
        chatgpt_node("u2-edit", "a1", ["a2-first", "a2-again"], "user", ["And plus 2?"], 30),
        chatgpt_node("a2-first", "u2-edit", [], "assistant", ["Six."], 31),
        chatgpt_node("a2-again", "u2-edit", [], "assistant", ["It is 6."], 40, metadata={"model_slug": "gpt-4o"}),
    ]  # fmt: skip
    return {
        "title": title,
        "create_time": T0,
        "update_time": T0 + 40,
        "mapping": {node["id"]: node for node in nodes},
        "moderation_results": [],
        "current_node": "a2-again",
        "plugin_ids": None,
        "conversation_id": "6601a2b3-c4d5-e6f7-8091-a2b3c4d5e6f7",
        "conversation_template_id": None,
        "gizmo_id": None,
        "is_archived": False,
        "safe_urls": [],
        "default_model_slug": "gpt-4o",
        "id": "6601a2b3-c4d5-e6f7-8091-a2b3c4d5e6f7",
    }


def chatgpt_linear(title: str, *texts: str) -> dict[str, Any]:
    ids = [f"n{i}" for i in range(len(texts))]
    nodes = [
        chatgpt_node(node_id, ids[i - 1] if i else None, ids[i + 1 : i + 2], "user" if i % 2 == 0 else "assistant",
                     [text], i)
        for i, (node_id, text) in enumerate(zip(ids, texts, strict=True))
    ]  # fmt: skip
    return {"title": title, "create_time": T0, "update_time": T0 + len(texts), "current_node": ids[-1],
            "mapping": {n["id"]: n for n in nodes}, "id": title}  # fmt: skip


def as_file(document: Any) -> IO[bytes]:
    return io.BytesIO(json.dumps(document).encode())


def as_zip(entries: dict[str, Any]) -> IO[bytes]:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as files:
        for name, document in entries.items():
            files.writestr(name, document if isinstance(document, bytes) else json.dumps(document))
    out.seek(0)
    return out


def imported(import_format: ImportFormat, upload: IO[bytes], limits: ImportLimits | None = None) -> list[Any]:
    """Every item, with each conversation's messages read into a list, as a job consumes them."""
    items: list[ImportedItem] = []
    for item in read_import(import_format, upload, *([limits] if limits else [])):
        if isinstance(item, ImportedConversation):
            item.messages = list(item.messages)
        items.append(item)
    return items


def turns(conversation: ImportedConversation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conversation.messages if isinstance(m, ImportedMessage)]


def refusal(import_format: ImportFormat, upload: IO[bytes], limits: ImportLimits | None = None) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        read_import(import_format, upload, *([limits] if limits else []))
    assert raised.value.status == 422
    return raised.value


def test_chatgpt_imports_only_the_branch_the_user_saw_with_its_times_and_model() -> None:
    (conversation,) = imported("chatgpt", as_file([chatgpt_conversation_with_an_edit()]))

    assert turns(conversation) == [
        ("user", "What is 2+2?"),
        ("assistant", "It is 4."),
        ("user", "And plus 2?"),
        ("assistant", "It is 6."),
    ]
    assert [m.created_at for m in conversation.messages] == [at(10), at(13), at(30), at(40)]  # type: ignore[union-attr]
    assert (conversation.title, conversation.model) == ("Arithmetic", "gpt-4o")
    assert (conversation.created_at, conversation.updated_at) == (at(0), at(40))
    assert conversation.source_id == "6601a2b3-c4d5-e6f7-8091-a2b3c4d5e6f7"


def test_chatgpt_without_a_current_node_follows_the_newest_branch() -> None:
    raw = chatgpt_conversation_with_an_edit()
    del raw["current_node"]

    (conversation,) = imported("chatgpt", as_file([raw]))

    assert turns(conversation)[-2:] == [("user", "And plus 2?"), ("assistant", "It is 6.")]


def test_chatgpt_export_zip_is_read_for_its_conversations_json() -> None:
    upload = as_zip({
        "chat.html": b"<html></html>",
        "user.json": {"id": "user-abc", "email": "ada@example.com"},
        "message_feedback.json": [],
        "conversations.json": [chatgpt_conversation_with_an_edit(), chatgpt_linear("Second", "hi", "hello")],
    })  # fmt: skip

    first, second = imported("chatgpt", upload)

    assert turns(first)[-1] == ("assistant", "It is 6.")
    assert turns(second) == [("user", "hi"), ("assistant", "hello")]


def test_chatgpt_conversation_without_a_mapping_is_reported_and_the_rest_imported() -> None:
    broken = chatgpt_linear("Broken", "x")
    del broken["mapping"]

    first, rejected, last = imported(
        "chatgpt", as_file([chatgpt_linear("One", "a"), broken, chatgpt_linear("Three", "c")])
    )

    assert rejected == RejectedItem('conversation 2 "Broken"', "it has no message tree (mapping)")
    assert rejected.as_result() == {"item": 'conversation 2 "Broken"', "reason": "it has no message tree (mapping)"}
    assert (turns(first), turns(last)) == ([("user", "a")], [("user", "c")])


def test_chatgpt_message_with_no_text_is_reported_and_the_rest_of_its_conversation_imported() -> None:
    raw = chatgpt_linear("Pictures", "look at this", "nice", "and this")
    raw["mapping"]["n2"]["message"]["content"] = {
        "content_type": "multimodal_text",
        "parts": [{"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-1", "width": 10}],
    }

    (conversation,) = imported("chatgpt", as_file([raw]))

    assert turns(conversation) == [("user", "look at this"), ("assistant", "nice")]
    assert conversation.messages[-1] == RejectedItem(  # type: ignore[index]
        'conversation 1 "Pictures", message 3', "it holds only attachments, which are not imported"
    )


def test_chatgpt_conversation_of_100000_messages_is_refused_on_its_own_with_the_cap_named() -> None:
    count = 100_000
    # the cap counts tree nodes, so lean ones keep the file (and the test) small: 100,000 nodes, 5 MB
    nodes = {f"n{i}": {"parent": f"n{i - 1}" if i else None, "children": [f"n{i + 1}"], "message": None}
             for i in range(count)}  # fmt: skip
    huge = {"title": "Endless", "create_time": T0, "current_node": f"n{count - 1}", "mapping": nodes}

    huge_result, kept = imported("chatgpt", as_file([huge, chatgpt_linear("Kept", "a")]))

    assert huge_result == RejectedItem('conversation 1 "Endless"', "it has more than 10000 messages")
    assert turns(kept) == [("user", "a")]


def test_chatgpt_conversation_over_the_size_cap_is_skipped_unparsed_and_reported() -> None:
    big = chatgpt_linear("Big", "y" * (2 * MB))
    limits = ImportLimits(max_conversation_bytes=1 * MB)

    rejected, kept = imported("chatgpt", as_file([big, chatgpt_linear("Kept", "a")]), limits)

    assert rejected == RejectedItem("conversation 1", f"it is larger than {1 * MB} bytes")
    assert turns(kept) == [("user", "a")]


def test_a_large_conversations_json_is_read_one_conversation_at_a_time() -> None:
    count, size = 40, MB
    upload = as_file([chatgpt_linear(f"C{n}", "question", chr(65 + n % 26) * size) for n in range(count)])

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        lengths = [len(turns(c)[1][1]) for c in read_import("chatgpt", upload) if isinstance(c, ImportedConversation)]
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert lengths == [size] * count
    assert peak < 12 * size  # of the 40 MB file


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 64, MB])
def test_conversations_are_split_right_wherever_the_reads_cut_the_file(
    read_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    tricky = [chatgpt_linear('quotes " ] } [ , and \\ backslashes', 'a "quoted" \\"]}', "é ✓ 会話")]
    oversized = chatgpt_linear("Big", '\\"]}' * 1000)
    upload = as_file([*tricky, oversized, chatgpt_linear("Last", "bye")])
    monkeypatch.setattr(json_stream, "_CHUNK", read_size)

    first, rejected, last = imported("chatgpt", upload, ImportLimits(max_conversation_bytes=4000))

    assert (first.title, turns(first)) == (
        tricky[0]["title"],
        [("user", 'a "quoted" \\"]}'), ("assistant", "é ✓ 会話")],
    )
    assert rejected == RejectedItem("conversation 2", "it is larger than 4000 bytes")
    assert turns(last) == [("user", "bye")]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"\x89PNG\r\n\x1a\n not json at all", "not_json"),
        (b'[{"title": "cut short", "mapping": {', "not_json"),
        (b'{"conversations": []}', "wrong_shape"),
        (json.dumps([{"uuid": "c1", "name": "Claude's", "chat_messages": []}]).encode(), "wrong_shape"),
        (b"PK\x03\x04 a zip in name only", "not_a_zip"),
    ],
    ids=["binary", "truncated", "an object", "a claude export", "a broken zip"],
)
def test_a_chatgpt_upload_that_is_not_what_it_claims_fails_before_any_item(content: bytes, code: str) -> None:
    assert refusal("chatgpt", io.BytesIO(content)).error_code == code


def test_a_zip_without_conversations_json_is_refused() -> None:
    error = refusal("chatgpt", as_zip({"chat.html": b"<html></html>"}))
    assert (error.error_code, error.message) == (
        "wrong_shape",
        "The ZIP holds no conversations.json, as a ChatGPT export does",
    )


def test_zip_entries_named_to_climb_out_are_ignored() -> None:
    planted = [chatgpt_linear("Planted", "evil")]
    upload = as_zip({"../conversations.json": planted, "/conversations.json": planted,
                     "export/conversations.json": [chatgpt_linear("Real", "mine")]})  # fmt: skip

    (conversation,) = imported("chatgpt", upload)
    assert turns(conversation) == [("user", "mine")]

    with pytest.raises(ValidationFailed, match=r"holds no conversations\.json"):
        read_import("chatgpt", as_zip({"../../conversations.json": planted}))


# Claude -------------------------------------------------------------------------------------------------


def claude_conversation() -> dict[str, Any]:
    return {
        "uuid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        "name": "Trip planning",
        "created_at": "2024-03-01T10:00:00.000000Z",
        "updated_at": "2024-03-01T10:05:00.123456Z",
        "account": {"uuid": "a1b2c3d4-0000-0000-0000-000000000000"},
        "chat_messages": [
            {
                "uuid": "m1", "sender": "human", "created_at": "2024-03-01T10:00:05.000000Z",
                "updated_at": "2024-03-01T10:00:05.000000Z", "text": "Plan a day in Lyon",
                "content": [{"type": "text", "text": "Plan a day in Lyon", "start_timestamp": "2024-03-01T10:00:05Z",
                             "citations": []}],
                "attachments": [{"file_name": "notes.txt", "file_size": 12, "file_type": "txt",
                                 "extracted_content": "Museums first"}],
                "files": [],
            },
            {
                "uuid": "m2", "sender": "assistant", "created_at": "2024-03-01T10:00:20+00:00",
                "updated_at": "2024-03-01T10:00:20+00:00", "text": "",
                "content": [
                    {"type": "text", "text": "Morning: Musée des Confluences."},
                    {"type": "tool_use", "name": "web_search", "input": {"query": "Lyon"}},
                    {"type": "tool_result", "name": "web_search", "content": [{"type": "text", "text": "results"}]},
                    {"type": "text", "text": "Evening: a bouchon."},
                ],
                "attachments": [], "files": [],
            },
            {"uuid": "m3", "sender": "human", "created_at": "2024-03-01T10:04:00Z", "text": "Thanks!",
             "attachments": [], "files": []},
            {"uuid": "m4", "sender": "assistant", "created_at": "2024-03-01T10:05:00Z", "text": "", "content": [],
             "attachments": [], "files": []},
        ],
    }  # fmt: skip


def test_claude_imports_roles_text_blocks_and_timestamps() -> None:
    (conversation,) = imported("claude", as_file([claude_conversation()]))

    assert turns(conversation) == [
        ("user", "Plan a day in Lyon\n\n[notes.txt]\nMuseums first"),
        ("assistant", "Morning: Musée des Confluences.\n\nEvening: a bouchon."),
        ("user", "Thanks!"),
    ]
    assert [m.created_at for m in conversation.messages[:3]] == [  # type: ignore[index, union-attr]
        datetime(2024, 3, 1, 10, 0, 5, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, 20, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 4, tzinfo=UTC),
    ]
    assert conversation.messages[3] == RejectedItem('conversation 1 "Trip planning", message 4', "it has no text")  # type: ignore[index]
    assert (conversation.title, conversation.source_id) == ("Trip planning", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
    assert conversation.created_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert conversation.updated_at == datetime(2024, 3, 1, 10, 5, 0, 123456, tzinfo=UTC)


def test_claude_bad_items_are_reported_one_by_one() -> None:
    no_messages = {"uuid": "c2", "name": "Empty", "created_at": "2024-03-01T10:00:00Z"}
    odd_sender = claude_conversation()
    odd_sender["chat_messages"][2]["sender"] = "moderator"

    first, rejected = imported("claude", as_zip({"users.json": [], "conversations.json": [odd_sender, no_messages]}))

    assert rejected == RejectedItem('conversation 2 "Empty"', "it has no chat_messages")
    assert first.messages[2] == RejectedItem(
        'conversation 1 "Trip planning", message 3', "its sender is neither human nor assistant"
    )
    assert [role for role, _ in turns(first)] == ["user", "assistant"]


def test_a_chatgpt_export_uploaded_as_claude_is_refused() -> None:
    error = refusal("claude", as_file([chatgpt_linear("Mine", "hi")]))
    assert error.message == "The file is JSON but not a Claude export: no conversation has chat_messages"


# Stratus ------------------------------------------------------------------------------------------------


def test_stratus_archive_imports_projects_first_then_conversations_prompts_and_memories() -> None:
    contexts = sample_contexts()
    items = imported("stratus", io.BytesIO(write_archive(contexts)))

    kinds = [type(item).__name__ for item in items]
    assert kinds == ["ImportedProject"] + ["ImportedConversation"] * 3 + ["ImportedPrompt"] + ["ImportedMemory"] * 5
    project, first = items[0], items[1]
    assert isinstance(project, ImportedProject)
    assert project.name == "Launch"
    assert first.project_source_id == project.source_id
    original = contexts["conversations"][0]["messages"]
    assert [(m.role, m.content) for m in first.messages] == [(m["role"], m["content"]) for m in original]
    assert first.messages[1].metadata == {"model": "claude-sonnet"}
    assert first.messages[0].created_at == datetime(2026, 3, 1, 10, 1, tzinfo=UTC)
    prompt, memory = items[4], items[5]
    assert isinstance(prompt, ImportedPrompt)
    assert (prompt.title, prompt.tags) == ("Review", ["a"])
    assert isinstance(memory, ImportedMemory)
    assert (memory.content, memory.category) == ("fact 0", None)


def test_stratus_bad_records_are_reported_and_the_rest_imported() -> None:
    contexts = sample_contexts()
    contexts["memories"][1]["content"] = ""
    contexts["conversations"][0]["messages"][0]["role"] = "robot"
    contexts["conversations"][1]["createdAt"] = "sometime"

    items = imported("stratus", io.BytesIO(write_archive(contexts)))

    rejected = [item for item in items if isinstance(item, RejectedItem)]
    assert rejected == [
        RejectedItem("conversation 2", "its createdAt is not a timestamp"),
        RejectedItem("memory 2", "it has no content"),
    ]
    first = items[1]
    assert first.messages[0] == RejectedItem("conversation 1, message 1", "its role is not user, assistant or system")
    assert len([m for m in items if isinstance(m, ImportedMemory)]) == 4


def test_a_json_file_uploaded_as_a_stratus_export_is_refused() -> None:
    error = refusal("stratus", as_file([chatgpt_linear("Mine", "hi")]))
    assert error.error_code == "not_a_zip"


# Sizes and bombs ----------------------------------------------------------------------------------------


def test_a_file_over_max_bytes_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "conversations.json"
    with path.open("wb") as sparse:
        sparse.truncate(ImportLimits().max_bytes + 1)  # a 200 MB file of nothing, without writing 200 MB

    with path.open("rb") as upload:
        error = refusal("chatgpt", upload)

    assert error.error_code == "import_too_large"
    assert str(ImportLimits().max_bytes) in error.message


def declaring(data: bytes, name: str, size: int) -> bytes:
    """The ZIP with `name`'s uncompressed size rewritten in its local header and central directory."""
    patched = bytearray(data)
    encoded = name.encode()
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := patched.find(signature, start)) != -1:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if patched[name_at : name_at + len(encoded)] == encoded:
                struct.pack_into("<I", patched, start + offset, size)
            start += 4
    return bytes(patched)


def test_a_zip_declaring_a_gigabyte_unpacked_is_refused_before_any_byte_is_inflated() -> None:
    data = as_zip({"conversations.json": [chatgpt_linear("Small", "hi")]}).read()

    error = refusal("chatgpt", io.BytesIO(declaring(data, "conversations.json", 1024 * MB)))

    assert error.error_code == "archive_too_large"


def test_a_zip_entry_inflating_past_what_its_header_declares_is_refused() -> None:
    data = as_zip({"conversations.json": [chatgpt_linear(f"C{n}", "hi " * 1000) for n in range(50)]}).read()

    error = refusal("chatgpt", io.BytesIO(declaring(data, "conversations.json", 1000)))

    assert error.error_code in ("archive_corrupt", "not_json")


def test_a_zip_bomb_is_refused_by_its_compression_ratio() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as files:
        files.writestr("conversations.json", b"[" + b" " * (50 * MB) + b"]")

    error = refusal("chatgpt", io.BytesIO(out.getvalue()))

    assert (error.error_code, "ZIP bomb" in error.message) == ("archive_too_large", True)


def test_actual_inflated_bytes_are_capped_across_the_archive() -> None:
    contexts = sample_contexts()  # about 1.1 MB of JSON once unpacked
    limits = ImportLimits(max_unpacked_bytes=512 * 1024, max_ratio=10_000)

    error = refusal("stratus", io.BytesIO(write_archive(contexts)), limits)

    assert (error.error_code, error.message) == ("archive_too_large", "The archive unpacks to more than 524288 bytes")


def test_an_archive_under_the_cap_imports_though_it_is_read_twice() -> None:
    data = write_archive(sample_contexts())
    with zipfile.ZipFile(io.BytesIO(data)) as files:
        unpacked = sum(info.file_size for info in files.infolist())
    limits = ImportLimits(max_unpacked_bytes=unpacked + 1, max_ratio=10_000)  # checked whole, then read again

    assert len(imported("stratus", io.BytesIO(data), limits)) == 10


def test_a_zip_with_another_compression_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_BZIP2) as files:
        files.writestr("conversations.json", json.dumps([chatgpt_linear("x", "y")]))

    assert refusal("chatgpt", io.BytesIO(out.getvalue())).error_code == "archive_unsupported"
