"""The Stratus export archive: what is written reads back identical, record by record in bounded memory, and a
damaged or foreign archive is refused whole with its reason."""

from __future__ import annotations

import io
import json
import sys
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.jobs.formats.archive import ExportArchive, ExportWriter
from shared.errors import ValidationFailed

EXPORTED_AT = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
MB = 1024 * 1024


class UnseekableSink(io.RawIOBase):
    """What a multipart upload looks like to the writer: bytes go out in order, never revisited."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: Any) -> int:
        self.data += chunk
        return len(chunk)

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("not seekable")

    def seek(self, *_: Any) -> int:
        raise OSError("not seekable")


def message(seq: int, content: str, role: str = "user") -> dict[str, Any]:
    return {
        "id": f"01JM{seq:022d}",
        "conversationId": "01JC0000000000000000000001",
        "seq": seq,
        "role": role,
        "content": content,
        "authorId": "01JU0000000000000000000001",
        "metadata": {"model": "claude-sonnet"} if role == "assistant" else None,
        "createdAt": f"2026-03-01T10:{seq % 60:02d}:00Z",
    }


def conversation(number: int, messages: list[dict[str, Any]], project_id: str | None = None) -> dict[str, Any]:
    return {
        "id": f"01JC{number:022d}",
        "title": f"Conversation {number} — ünïcødé ✓ 会話",
        "projectId": project_id,
        "model": "claude-sonnet",
        "systemPrompt": None,
        "archived": number % 2 == 0,
        "messageCount": len(messages),
        "ownerId": "01JU0000000000000000000001",
        "access": "owner",
        "createdAt": "2026-03-01T10:00:00Z",
        "updatedAt": "2026-03-02T10:00:00Z",
        "lastActivityAt": "2026-03-02T10:00:00Z",
        "messages": messages,
    }


def big_body(seed: int) -> str:
    """A megabyte of varied text (unicode, quotes, newlines, backslashes), as a pasted document would be."""
    line = f'{seed}: «naïve» "quoted" \\path\\ 🚀 日本語 tab\t end\n'
    return (line * (MB // len(line) + 1))[:MB]


def sample_contexts() -> dict[str, list[dict[str, Any]]]:
    first = [
        message(1, "Hello"),
        message(2, big_body(2), "assistant"),
        message(3, "\U0001d518\U0001d52b astral plane, and a \u0000 nul"),
    ]
    return {
        "conversations": [
            conversation(1, first, project_id="01JP0000000000000000000001"),
            conversation(2, []),
            conversation(3, [message(n, f"message {n}") for n in range(1, 41)]),
        ],
        "projects": [
            {
                "id": "01JP0000000000000000000001",
                "name": "Launch",
                "description": None,
                "members": [{"userId": "x"}],
                "createdAt": "2026-02-01T00:00:00Z",
                "updatedAt": "2026-02-01T00:00:00Z",
            },
        ],
        "prompts": [
            {"id": "01JR0000000000000000000001", "title": "Review", "content": "Review: {{code}}", "tags": ["a"]}
        ],
        "memories": [
            {"id": f"01JY{n:022d}", "content": f"fact {n}", "createdAt": "2026-01-01T00:00:00Z"} for n in range(5)
        ],
        "mcp-servers": [],
    }


def write_archive(contexts: dict[str, list[dict[str, Any]]], sink: Any | None = None) -> bytes:
    sink = sink if sink is not None else UnseekableSink()
    with ExportWriter(sink, user_id="01JU0000000000000000000001", exported_at=EXPORTED_AT) as writer:
        writer.write_conversations(iter(contexts["conversations"]))
        for name, records in contexts.items():
            if name != "conversations":
                writer.write_context(name, iter(records))
        writer.write_document("profile.json", {"email": "ada@example.com", "name": "Ada"})
        writer.write_document("settings.json", {"theme": "dark"})
    return bytes(sink.data)


def read_back(archive: ExportArchive, name: str) -> list[dict[str, Any]]:
    records = []
    for record in archive.records(name):
        if "messages" in record:
            record["messages"] = list(record["messages"])
        records.append(record)
    return records


def test_round_trip_gives_identical_records_in_order_with_megabyte_bodies_and_unicode() -> None:
    contexts = sample_contexts()
    data = write_archive(contexts)

    with ExportArchive.open(io.BytesIO(data)) as archive:
        for name, records in contexts.items():
            assert read_back(archive, name) == records, name
        assert archive.document("profile.json") == {"email": "ada@example.com", "name": "Ada"}
        assert archive.document("settings.json") == {"theme": "dark"}
        assert archive.manifest.user_id == "01JU0000000000000000000001"
        assert archive.manifest.exported_at == EXPORTED_AT


def test_manifest_names_each_file_and_its_counts() -> None:
    data = write_archive(sample_contexts())

    with zipfile.ZipFile(io.BytesIO(data)) as files:
        manifest = json.loads(files.read("manifest.json"))
        names = set(files.namelist())
    with ExportArchive.open(io.BytesIO(data)) as archive:
        assert archive.manifest.as_json() == manifest
    assert manifest == {
        "format": "stratus-export",
        "version": 1,
        "userId": "01JU0000000000000000000001",
        "exportedAt": "2026-11-30T09:15:00+00:00",
        "contexts": {
            "conversations": {"file": "conversations.jsonl", "count": 3, "messages": 43},
            "projects": {"file": "projects.jsonl", "count": 1},
            "prompts": {"file": "prompts.jsonl", "count": 1},
            "memories": {"file": "memories.jsonl", "count": 5},
            "mcp-servers": {"file": "mcp-servers.jsonl", "count": 0},
        },
    }
    assert names == {f"{n}.jsonl" for n in manifest["contexts"]} | {"manifest.json", "profile.json", "settings.json"}


def test_a_conversation_longer_than_any_third_party_import_may_be_round_trips_streamed() -> None:
    count = 20_000

    def messages() -> Iterator[dict[str, Any]]:
        return (message(n, f"m{n}") for n in range(1, count + 1))

    sink = UnseekableSink()
    with ExportWriter(sink, user_id="u", exported_at=EXPORTED_AT) as writer:
        writer.write_conversations([{**conversation(1, []), "messages": messages()}])
    assert writer.manifest is not None
    assert (writer.manifest.contexts["conversations"].count, writer.manifest.contexts["conversations"].messages) == (
        1,
        count,
    )

    with ExportArchive.open(io.BytesIO(bytes(sink.data))) as archive:
        seqs = [m["seq"] for c in archive.records("conversations") for m in c["messages"]]
    assert seqs == list(range(1, count + 1))


def test_writing_and_reading_hold_a_few_megabyte_messages_at_a_time_never_the_conversation() -> None:
    count = 24
    one_message = sys.getsizeof(big_body(0))  # in memory: emoji make it 4 bytes a character

    def messages() -> Iterator[dict[str, Any]]:
        return (message(n, big_body(n)) for n in range(count))

    tracemalloc.start()
    try:
        sink = UnseekableSink()
        base = tracemalloc.get_traced_memory()[0]
        with ExportWriter(sink, user_id="u", exported_at=EXPORTED_AT) as writer:
            writer.write_conversations([{**conversation(1, []), "messages": messages()}])
        writing_peak = tracemalloc.get_traced_memory()[1] - base - len(sink.data)
        data = bytes(sink.data)
        del sink
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with ExportArchive.open(io.BytesIO(data)) as archive:
            sizes = [len(m["content"]) for c in archive.records("conversations") for m in c["messages"]]
        reading_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert sizes == [MB] * count
    assert writing_peak < 4 * one_message  # of 24 in the conversation
    assert reading_peak < 4 * one_message


def test_messages_left_unread_are_skipped_and_the_next_conversation_comes_whole() -> None:
    data = write_archive(sample_contexts())

    with ExportArchive.open(io.BytesIO(data)) as archive:
        conversations = archive.records("conversations")
        next(conversations)  # its messages never read
        second, third = next(conversations), next(conversations)
        assert (second["id"], list(second["messages"])) == ("01JC0000000000000000000002", [])
        assert [m["seq"] for m in third["messages"]] == list(range(1, 41))


def rewritten(data: bytes, changes: dict[str, bytes | None]) -> bytes:
    """The archive with some entries replaced (or removed, for None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename not in changes:
                target.writestr(info.filename, source.read(info))
        for name, content in changes.items():
            if content is not None:
                target.writestr(name, content)
    return out.getvalue()


def manifest_of(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as files:
        manifest: dict[str, Any] = json.loads(files.read("manifest.json"))
        return manifest


def refusal(data: bytes) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as raised:
        ExportArchive.open(io.BytesIO(data))
    return raised.value


@pytest.mark.parametrize(
    ("change", "code", "says"),
    [
        ({"format": "chatgpt-export"}, "unsupported_export", "not a Stratus export"),
        ({"version": 2}, "unsupported_export", "version 2"),
        ({"exportedAt": "yesterday"}, "archive_corrupt", "exportedAt"),
    ],
)
def test_a_manifest_of_another_format_or_version_is_refused(change: dict[str, Any], code: str, says: str) -> None:
    data = write_archive(sample_contexts())
    manifest = {**manifest_of(data), **change}

    error = refusal(rewritten(data, {"manifest.json": json.dumps(manifest).encode()}))

    assert (error.error_code, error.status) == (code, 422)
    assert says in error.message


def test_a_file_the_manifest_names_but_the_archive_lacks_is_refused() -> None:
    error = refusal(rewritten(write_archive(sample_contexts()), {"memories.jsonl": None}))
    assert error.error_code == "archive_corrupt"
    assert "memories.jsonl" in error.message


def test_a_count_that_does_not_match_is_refused() -> None:
    data = write_archive(sample_contexts())
    manifest = manifest_of(data)
    manifest["contexts"]["memories"]["count"] = 6

    error = refusal(rewritten(data, {"manifest.json": json.dumps(manifest).encode()}))
    assert "memories.jsonl holds 5 records, the manifest says 6" in error.message


def test_a_line_that_is_not_json_fails_the_archive_before_any_record_is_read() -> None:
    data = write_archive(sample_contexts())
    with zipfile.ZipFile(io.BytesIO(data)) as files:
        lines = files.read("prompts.jsonl")

    error = refusal(rewritten(data, {"prompts.jsonl": lines + b"{not json\n"}))
    assert "prompts.jsonl line 2 is not JSON" in error.message


def test_a_message_line_before_any_conversation_is_refused() -> None:
    data = write_archive(sample_contexts())
    with zipfile.ZipFile(io.BytesIO(data)) as files:
        lines = files.read("conversations.jsonl")

    error = refusal(rewritten(data, {"conversations.jsonl": b'{"message": {"seq": 0}}\n' + lines}))
    assert "message before any conversation" in error.message


def test_a_zip_without_a_manifest_is_not_a_stratus_export() -> None:
    error = refusal(rewritten(write_archive(sample_contexts()), {"manifest.json": None}))
    assert error.error_code == "wrong_shape"


def test_an_export_that_failed_half_way_leaves_no_manifest_so_it_is_never_read_as_whole() -> None:
    def failing() -> Iterator[dict[str, Any]]:
        yield {"id": "1", "content": "kept"}
        raise RuntimeError("the table went away")

    sink = io.BytesIO()
    with pytest.raises(RuntimeError), ExportWriter(sink, user_id="u", exported_at=EXPORTED_AT) as writer:
        writer.write_context("memories", failing())

    assert refusal(sink.getvalue()).error_code == "wrong_shape"
