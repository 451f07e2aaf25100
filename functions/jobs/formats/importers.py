"""An uploaded import file of a named format turned into imported items: the one entry point an import job
calls. The whole file is checked first, so a file that is not what it claims fails before any item is
produced; after that, a bad item is a RejectedItem in the stream and the rest still comes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import IO

from functions.jobs.formats import chatgpt, claude
from functions.jobs.formats.archive import ExportArchive
from functions.jobs.formats.items import ImportedConversation, ImportedItem, ImportFormat, RejectedItem
from functions.jobs.formats.json_stream import OversizedElement, array_elements
from functions.jobs.formats.limits import DEFAULT_LIMITS, ImportLimits
from functions.jobs.formats.stratus import import_archive
from functions.jobs.formats.uploads import SafeZip, looks_like_zip, upload_size
from shared.errors import ValidationFailed

CONVERSATIONS_JSON = "conversations.json"
_NAMES = {"chatgpt": "ChatGPT", "claude": "Claude"}


def read_import(
    import_format: ImportFormat, upload: IO[bytes], limits: ImportLimits = DEFAULT_LIMITS
) -> Iterator[ImportedItem]:
    """The items of `upload` (a seekable binary file), read lazily. Raises ValidationFailed, before the first
    item, for a file over `max_bytes`, not JSON or not a ZIP, of the wrong shape, a Stratus archive of another
    format or version, or a ZIP bomb."""
    upload_size(upload, limits)
    if import_format == "stratus":
        return _stratus(upload, limits)
    if import_format in _NAMES:
        return _conversations_json(import_format, upload, limits)
    raise ValidationFailed(f"Unknown import format {import_format!r}", code="unsupported_format")


def _stratus(upload: IO[bytes], limits: ImportLimits) -> Iterator[ImportedItem]:
    if not looks_like_zip(upload):
        raise ValidationFailed("The file is not a ZIP archive, as a Stratus export is", code="not_a_zip")
    archive = ExportArchive.open(upload, limits)
    return _closing(archive.close, import_archive(archive))


def _closing(close: Callable[[], None], items: Iterator[ImportedItem]) -> Iterator[ImportedItem]:
    try:
        yield from items
    finally:
        close()


Converter = Callable[[int, object, ImportLimits], ImportedConversation | RejectedItem]
_CONVERTERS: dict[str, tuple[str, Converter]] = {
    "chatgpt": (chatgpt.MARKER, chatgpt.import_conversation),
    "claude": (claude.MARKER, claude.import_conversation),
}


def _conversations_json(name: str, upload: IO[bytes], limits: ImportLimits) -> Iterator[ImportedItem]:
    marker, convert = _CONVERTERS[name]
    stack = ExitStack()
    try:
        opener = _opener(name, upload, limits, stack)
        _check_whole_file(name, opener, marker, limits)
    except BaseException:
        stack.close()
        raise
    return _closing(stack.close, _conversations(convert, opener, limits))


def _opener(name: str, upload: IO[bytes], limits: ImportLimits, stack: ExitStack) -> Callable[[], IO[bytes]]:
    """How to read `conversations.json` from the start, once per pass: the upload itself, or its entry in a ZIP."""
    if not looks_like_zip(upload):

        def rewound() -> IO[bytes]:
            upload.seek(0)
            return upload

        return rewound
    files = SafeZip(upload, limits)
    stack.callback(files.close)
    entry_name = files.find(CONVERSATIONS_JSON)
    if entry_name is None:
        raise ValidationFailed(
            f"The ZIP holds no {CONVERSATIONS_JSON}, as a {_NAMES[name]} export does", code="wrong_shape"
        )

    def entry() -> IO[bytes]:
        files.restart_budget()
        return stack.enter_context(files.open(entry_name))

    return entry


def _check_whole_file(name: str, opener: Callable[[], IO[bytes]], marker: str, limits: ImportLimits) -> None:
    """Reads the file through once: it must be a JSON array (of bounded elements, each parsed), and if it
    holds any conversation, at least one must carry the format's marker key."""
    elements = marked = 0
    for element in array_elements(opener(), max_element_bytes=limits.max_conversation_bytes):
        elements += 1
        if not isinstance(element, OversizedElement) and isinstance(element[1], dict) and marker in element[1]:
            marked += 1
    if elements and not marked:
        raise ValidationFailed(
            f"The file is JSON but not a {_NAMES[name]} export: no conversation has {marker}", code="wrong_shape"
        )


def _conversations(convert: Converter, opener: Callable[[], IO[bytes]], limits: ImportLimits) -> Iterator[ImportedItem]:
    for element in array_elements(opener(), max_element_bytes=limits.max_conversation_bytes):
        if isinstance(element, OversizedElement):
            yield RejectedItem(
                f"conversation {element.index + 1}", f"it is larger than {limits.max_conversation_bytes} bytes"
            )
            continue
        index, raw = element
        yield convert(index, raw, limits)
