"""What this container has read of conversations' histories, so a reply does not read them again.

A message never changes once stored, and its place (`seq`) comes from the conversation's atomic counter
(`message_count`), which chat reads anyway to check access: when the counter has not moved past the last place
known here, the history known here is the whole of it, and no Query is needed. When it has, only the newer places
are read.

Only an unbroken run of places is kept. A place another writer has claimed but not yet stored is read again next
time rather than missed for good; a run that cannot grow past such a gap just means that conversation is read as
before. The cache is bounded in conversations and in bytes, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from functions.conversations.models import MessagePublic

MAX_CONVERSATIONS = 256
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class KnownHistory:
    """The newest messages known of a conversation, oldest first; every place up to `last_seq` is accounted for."""

    messages: tuple[MessagePublic, ...]
    last_seq: int
    # How many of the newest messages are kept.
    keep: int


class HistoryCache:
    def __init__(self, *, max_conversations: int = MAX_CONVERSATIONS, max_bytes: int = MAX_BYTES) -> None:
        self._max_conversations = max_conversations
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._known: OrderedDict[str, KnownHistory] = OrderedDict()
        self._bytes = 0

    def get(self, conversation_id: str) -> KnownHistory | None:
        with self._lock:
            known = self._known.get(conversation_id)
            if known is not None:
                self._known.move_to_end(conversation_id)
            return known

    def remember(
        self, conversation_id: str, messages: Sequence[MessagePublic], *, keep: int, after: KnownHistory | None = None
    ) -> None:
        """Record `messages` (oldest first) read of a conversation, newer than `after` when given; keeps at most
        the newest `keep`, and only as far as their places run on without a gap."""
        base = after.messages if after is not None else ()
        last_seq = after.last_seq if after is not None else (messages[0].seq - 1 if messages else 0)
        run = list(base)
        for message in messages:
            if message.seq != last_seq + 1:
                break
            run.append(message)
            last_seq = message.seq
        if not run:
            return
        self._store(conversation_id, KnownHistory(tuple(run[-keep:]), last_seq, keep), expected=after)

    def extend(self, conversation_id: str, message: MessagePublic) -> None:
        """A message this container has just stored: kept when it is the next place of a known history."""
        known = self.get(conversation_id)
        if known is not None and message.seq == known.last_seq + 1:
            messages = (*known.messages, message)[-known.keep :]
            self._store(conversation_id, KnownHistory(messages, message.seq, known.keep), expected=known)

    def forget(self, conversation_id: str) -> None:
        with self._lock:
            dropped = self._known.pop(conversation_id, None)
            if dropped is not None:
                self._bytes -= _size(dropped)

    def _store(self, conversation_id: str, history: KnownHistory, *, expected: KnownHistory | None) -> None:
        with self._lock:
            current = self._known.get(conversation_id)
            # Another request of this container moved the history on meanwhile: keep whichever knows more.
            if current is not None and current is not expected and current.last_seq >= history.last_seq:
                return
            if current is not None:
                self._bytes -= _size(current)
            self._known[conversation_id] = history
            self._known.move_to_end(conversation_id)
            self._bytes += _size(history)
            while self._known and (len(self._known) > self._max_conversations or self._bytes > self._max_bytes):
                _, evicted = self._known.popitem(last=False)
                self._bytes -= _size(evicted)


def _size(history: KnownHistory) -> int:
    return sum(len(message.content) for message in history.messages)
