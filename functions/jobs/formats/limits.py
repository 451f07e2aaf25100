"""How much an import may hold: the caps that keep one upload from exhausting a task's memory or time."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class ImportLimits:
    """Every cap an import is checked against. The defaults are the stage's; tests shrink them.

    Memory: a Stratus archive is read one JSON line at a time (a message or a record), so a task holds a few
    `max_record_bytes` of input at once, whatever the size of a conversation or of the file. ChatGPT and Claude
    exports hold one whole conversation (its message tree) at once, decoded from a buffer of at most twice its
    JSON: about ten times `max_conversation_bytes` at the worst (160 MB with the defaults), whatever the size of
    the file. A conversation over `max_conversation_bytes` or `max_messages_per_conversation` is rejected on its
    own (stepped over unparsed when too large), the rest of the file imported.
    """

    max_bytes: int = 200 * MB
    """The upload itself, as stored."""
    max_unpacked_bytes: int = 1024 * MB
    """All the entries of a ZIP read, inflated, counted as actually read (a header cannot lie its way past it)."""
    max_entry_bytes: int = 512 * MB
    """One ZIP entry, inflated."""
    max_ratio: int = 500
    """Inflated size over compressed size of one entry past its first megabyte: JSON text compresses 5-20
    times, a bomb near deflate's limit of about 1,000."""
    max_entries: int = 10_000
    """Entries in a ZIP's directory."""
    max_record_bytes: int = 8 * MB
    """One line of a Stratus archive: the longest message the API takes (1.5 million characters, 4 bytes each at
    worst in UTF-8) fits, so an archive Stratus wrote is never refused for it."""
    max_conversation_bytes: int = 16 * MB
    """One conversation of a ChatGPT or Claude export, as JSON."""
    max_messages_per_conversation: int = 10_000
    """Messages (tree nodes, for ChatGPT) of one ChatGPT or Claude conversation."""


DEFAULT_LIMITS = ImportLimits()
