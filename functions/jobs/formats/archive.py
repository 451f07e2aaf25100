"""The Stratus export archive: a ZIP of `manifest.json`, one JSON Lines file per context, `profile.json` and
`settings.json`, written and read one record at a time.

`conversations.jsonl` carries each conversation's messages right after it, one per line, so that neither a
long conversation nor a large message is ever held whole in memory:

    {"conversation": {"id": ..., "title": ..., ...}}
    {"message": {"seq": 1, "role": "user", "content": ..., ...}}
    {"message": ...}
    {"conversation": ...}

Every other context's file holds one record per line. The manifest counts the records of each file (and, for
conversations, the messages too); the reader checks every count, every named file and every line before it
hands out a single record, so a damaged archive is refused whole rather than half imported.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from functions.jobs.formats.items import from_iso
from functions.jobs.formats.limits import DEFAULT_LIMITS, ImportLimits
from functions.jobs.formats.uploads import SafeZip
from shared.errors import ValidationFailed

EXPORT_FORMAT = "stratus-export"
EXPORT_VERSION = 1
MANIFEST = "manifest.json"
DOCUMENTS = ("profile.json", "settings.json")
CONVERSATIONS = "conversations"
_CONTEXT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_MAX_DOCUMENT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ContextFile:
    file: str
    count: int
    messages: int | None = None
    """Conversations only: how many message lines follow the conversations."""

    def as_manifest(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"file": self.file, "count": self.count}
        if self.messages is not None:
            entry["messages"] = self.messages
        return entry


@dataclass(frozen=True)
class Manifest:
    user_id: str
    exported_at: datetime
    contexts: dict[str, ContextFile]

    def as_json(self) -> dict[str, Any]:
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "userId": self.user_id,
            "exportedAt": self.exported_at.isoformat(),
            "contexts": {name: entry.as_manifest() for name, entry in self.contexts.items()},
        }


def _line(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class ExportWriter:
    """Writes an export archive to `sink` (a file, or a stream such as a multipart upload: it need not seek),
    record by record; the manifest is written by `close`. An archive whose writing failed has no manifest, so
    no reader takes it for a whole one."""

    def __init__(self, sink: IO[bytes], *, user_id: str, exported_at: datetime) -> None:
        self._zip = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self._user_id = user_id
        self._exported_at = exported_at
        self._contexts: dict[str, ContextFile] = {}
        self._documents: set[str] = set()
        self.manifest: Manifest | None = None
        """What was written, once closed: the job's `result.counts` come from it."""

    def __enter__(self) -> ExportWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if error_type is None:
            self.close()
        else:
            self._zip.close()

    def _start(self, name: str) -> str:
        if not _CONTEXT_NAME.match(name):
            raise ValueError(f"not a context name: {name!r}")
        if name in self._contexts:
            raise ValueError(f"context {name} is already written")
        return f"{name}.jsonl"

    def write_context(self, name: str, records: Iterable[Mapping[str, Any]]) -> int:
        """Writes `name.jsonl`, one record per line; returns how many. Not for conversations."""
        if name == CONVERSATIONS:
            raise ValueError("conversations are written by write_conversations")
        file = self._start(name)
        count = 0
        # force_zip64: the size is unknown until the end and may pass 2 GiB
        with self._zip.open(file, "w", force_zip64=True) as entry:
            for record in records:
                entry.write(_line(record))
                count += 1
        self._contexts[name] = ContextFile(file, count)
        return count

    def write_conversations(self, conversations: Iterable[Mapping[str, Any]]) -> ContextFile:
        """Writes `conversations.jsonl`: each conversation (its `messages` any iterable, read once, one message
        at a time) followed by its messages."""
        file = self._start(CONVERSATIONS)
        count = messages = 0
        with self._zip.open(file, "w", force_zip64=True) as entry:
            for conversation in conversations:
                head = {key: value for key, value in conversation.items() if key != "messages"}
                entry.write(_line({"conversation": head}))
                count += 1
                for message in conversation.get("messages") or ():
                    entry.write(_line({"message": message}))
                    messages += 1
        written = ContextFile(file, count, messages)
        self._contexts[CONVERSATIONS] = written
        return written

    def write_conversation_lines(self, lines: Iterable[Mapping[str, Any]]) -> ContextFile:
        """Writes `conversations.jsonl` from lines already in its shape (`{"conversation": {...}}`, then that
        conversation's `{"message": {...}}` lines), as an export's pages hand them over."""
        file = self._start(CONVERSATIONS)
        count = messages = 0
        with self._zip.open(file, "w", force_zip64=True) as entry:
            for number, line in enumerate(lines, start=1):
                kind = _conversation_line_kind(dict(line), file, number)
                if kind == "message" and count == 0:
                    raise ValueError(f"{file} line {number} is a message before any conversation")
                entry.write(_line(line))
                if kind == "conversation":
                    count += 1
                else:
                    messages += 1
        written = ContextFile(file, count, messages)
        self._contexts[CONVERSATIONS] = written
        return written

    def write_document(self, name: str, document: Mapping[str, Any]) -> None:
        """Writes `profile.json` or `settings.json`."""
        if name not in DOCUMENTS:
            raise ValueError(f"not an export document: {name!r}")
        self._zip.writestr(name, json.dumps(document, ensure_ascii=False, indent=2))
        self._documents.add(name)

    def close(self) -> Manifest:
        """Writes what is missing (empty documents, the manifest) and finishes the ZIP."""
        for name in DOCUMENTS:
            if name not in self._documents:
                self.write_document(name, {})
        manifest = Manifest(self._user_id, self._exported_at, dict(self._contexts))
        self._zip.writestr(MANIFEST, json.dumps(manifest.as_json(), indent=2))
        self._zip.close()
        self.manifest = manifest
        return manifest


def _corrupt(reason: str) -> ValidationFailed:
    return ValidationFailed(f"The export archive is damaged: {reason}", code="archive_corrupt")


class ExportArchive:
    """A Stratus export archive, checked whole on `open`; its records then read lazily, file by file."""

    def __init__(self, files: SafeZip, manifest: Manifest, limits: ImportLimits) -> None:
        self._files = files
        self.manifest = manifest
        self._limits = limits

    @classmethod
    def open(cls, upload: IO[bytes], limits: ImportLimits = DEFAULT_LIMITS) -> ExportArchive:
        """Refuses (ValidationFailed) a file that is not a ZIP, a manifest of another format or version, a file
        the manifest names but the archive lacks, a count that does not match, a line that is not a JSON object."""
        files = SafeZip(upload, limits)
        try:
            archive = cls(files, _read_manifest(files), limits)
            archive._check_files()
            files.restart_budget()  # the records are read again, each pass under the cap
        except BaseException:
            files.close()
            raise
        return archive

    def close(self) -> None:
        self._files.close()

    def __enter__(self) -> ExportArchive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _check_files(self) -> None:
        for name in DOCUMENTS:
            if name in self._files.entries:
                self.document(name)
        for name, entry in self.manifest.contexts.items():
            lines = self._lines(entry.file)
            if name == CONVERSATIONS:
                counts = {"conversation": 0, "message": 0}
                for number, line in lines:
                    kind = _conversation_line_kind(line, entry.file, number)
                    if kind == "message" and counts["conversation"] == 0:
                        raise _corrupt(f"{entry.file} line {number} is a message before any conversation")
                    counts[kind] += 1
                found, messages = counts["conversation"], counts["message"]
                if entry.messages is not None and messages != entry.messages:
                    raise _corrupt(f"{entry.file} holds {messages} messages, the manifest says {entry.messages}")
            else:
                found = sum(1 for _ in lines)
            if found != entry.count:
                raise _corrupt(f"{entry.file} holds {found} records, the manifest says {entry.count}")

    def _lines(self, file: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """Each line of `file` as a JSON object, with its line number (from 1)."""
        cap = self._limits.max_record_bytes
        with self._files.open(file) as stream:
            number = 0
            while raw := stream.readline(cap + 1):
                number += 1
                yield number, _json_object(raw, f"{file} line {number}", cap)

    def document(self, name: str) -> dict[str, Any]:
        """`profile.json` or `settings.json` ({} when the archive has none)."""
        return _json_document(self._files, name) if name in self._files.entries else {}

    def records(self, name: str) -> Iterator[dict[str, Any]]:
        """The records of context `name` in archive order (none when the archive has no such context). For
        conversations, each one's `messages` is an iterator over the lines after it: read it before asking for
        the next conversation, or its messages are skipped."""
        entry = self.manifest.contexts.get(name)
        if entry is None:
            return iter(())
        if name == CONVERSATIONS:
            return self._conversations(entry.file)
        return (record for _, record in self._lines(entry.file))

    def _conversations(self, file: str) -> Iterator[dict[str, Any]]:
        lines = _Peekable(self._lines(file))
        while (line := lines.next()) is not None:
            conversation = dict(line[1]["conversation"])
            messages = _messages_of_one_conversation(lines)
            conversation["messages"] = messages
            yield conversation
            for _ in messages:  # what the reader left unread
                pass


class _Peekable:
    def __init__(self, lines: Iterator[tuple[int, dict[str, Any]]]) -> None:
        self._lines = lines
        self._pushed: tuple[int, dict[str, Any]] | None = None

    def next(self) -> tuple[int, dict[str, Any]] | None:
        if self._pushed is not None:
            line, self._pushed = self._pushed, None
            return line
        return next(self._lines, None)

    def push_back(self, line: tuple[int, dict[str, Any]]) -> None:
        self._pushed = line


def _messages_of_one_conversation(lines: _Peekable) -> Iterator[dict[str, Any]]:
    while (line := lines.next()) is not None:
        if "message" not in line[1]:
            lines.push_back(line)
            return
        yield line[1]["message"]


def _conversation_line_kind(line: dict[str, Any], file: str, number: int) -> str:
    if len(line) == 1:
        ((kind, value),) = line.items()
        if kind in ("conversation", "message") and isinstance(value, dict):
            return kind
    raise _corrupt(f"{file} line {number} is neither a conversation nor a message")


def _read_manifest(files: SafeZip) -> Manifest:
    if MANIFEST not in files.entries:
        raise ValidationFailed(
            "The file is a ZIP but not a Stratus export: it has no manifest.json", code="wrong_shape"
        )
    manifest = _json_document(files, MANIFEST)
    if manifest.get("format") != EXPORT_FORMAT:
        raise ValidationFailed(
            "The archive is not a Stratus export (its manifest names another format)", code="unsupported_export"
        )
    if manifest.get("version") != EXPORT_VERSION:
        raise ValidationFailed(
            f"The archive is a Stratus export of version {manifest.get('version')!r}; this stage reads version "
            f"{EXPORT_VERSION}",
            code="unsupported_export",
        )
    user_id, contexts = manifest.get("userId"), manifest.get("contexts")
    exported_at = from_iso(manifest.get("exportedAt"))
    if not isinstance(user_id, str) or exported_at is None or not isinstance(contexts, dict):
        raise _corrupt("the manifest lacks userId, exportedAt or contexts")
    return Manifest(user_id, exported_at, {name: _context_file(files, name, entry) for name, entry in contexts.items()})


def _json_document(files: SafeZip, name: str) -> dict[str, Any]:
    with files.open(name) as stream:
        return _json_object(stream.read(_MAX_DOCUMENT_BYTES + 1), name, _MAX_DOCUMENT_BYTES)


def _json_object(raw: bytes, where: str, cap: int) -> dict[str, Any]:
    """`raw` (read up to one byte past `cap`) as a JSON object, or the archive refused naming `where`."""
    if len(raw) > cap:
        raise _corrupt(f"{where} is longer than {cap} bytes")
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise _corrupt(f"{where} is not JSON") from error
    if not isinstance(value, dict):
        raise _corrupt(f"{where} is not a JSON object")
    return value


def _context_file(files: SafeZip, name: object, entry: object) -> ContextFile:
    if not isinstance(name, str) or not _CONTEXT_NAME.match(name) or not isinstance(entry, dict):
        raise _corrupt("the manifest names a context it does not describe")
    file, count, messages = entry.get("file"), entry.get("count"), entry.get("messages")
    if not isinstance(file, str) or not _is_count(count) or not (messages is None or _is_count(messages)):
        raise _corrupt(f"the manifest's entry for {name} needs a file and a count")
    if file not in files.entries:
        raise _corrupt(f"the manifest names {file}, which the archive does not hold")
    assert isinstance(count, int)
    return ContextFile(file, count, messages if isinstance(messages, int) else None)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
