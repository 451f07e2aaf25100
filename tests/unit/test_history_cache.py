"""The cache of conversation histories: only unbroken runs of places are kept, newest `keep`, bounded in size."""

from __future__ import annotations

from datetime import UTC, datetime

from functions.conversations.history import HistoryCache
from functions.conversations.models import MessagePublic


def message(seq: int, content: str = "") -> MessagePublic:
    return MessagePublic(
        id=f"m{seq}",
        conversation_id="c",
        seq=seq,
        role="user" if seq % 2 else "assistant",
        content=content or f"message {seq}",
        author_id="u",
        metadata=None,
        created_at=datetime(2026, 11, 23, tzinfo=UTC),
    )


def seqs(cache: HistoryCache, conversation_id: str = "c") -> list[int]:
    known = cache.get(conversation_id)
    assert known is not None
    return [m.seq for m in known.messages]


def test_a_read_window_is_kept_up_to_its_first_gap() -> None:
    cache = HistoryCache()
    # Place 13 is claimed by another writer and not stored yet: what follows it must be read again later.
    cache.remember("c", [message(n) for n in (11, 12, 14, 15)], keep=10)
    known = cache.get("c")
    assert known is not None
    assert (seqs(cache), known.last_seq) == ([11, 12], 12)


def test_newer_messages_extend_a_known_history_and_the_oldest_fall_out() -> None:
    cache = HistoryCache()
    cache.remember("c", [message(n) for n in range(1, 4)], keep=4)
    cache.remember("c", [message(n) for n in (4, 5)], keep=4, after=cache.get("c"))
    assert seqs(cache) == [2, 3, 4, 5]
    cache.extend("c", message(6))
    assert seqs(cache) == [3, 4, 5, 6]


def test_a_stored_message_is_kept_only_as_the_next_place() -> None:
    cache = HistoryCache()
    cache.extend("c", message(1))  # nothing known of the conversation: nothing to extend
    assert cache.get("c") is None
    cache.remember("c", [message(1), message(2)], keep=10)
    cache.extend("c", message(4))  # place 3 is someone else's, not known here
    assert seqs(cache) == [1, 2]


def test_a_history_moved_on_meanwhile_is_not_replaced_by_an_older_one() -> None:
    cache = HistoryCache()
    cache.remember("c", [message(1)], keep=10)
    earlier = cache.get("c")
    cache.extend("c", message(2))
    cache.extend("c", message(3))
    cache.remember("c", [message(2)], keep=10, after=earlier)  # a slower read that started before
    assert seqs(cache) == [1, 2, 3]


def test_least_recently_used_histories_go_first_by_count_and_by_bytes() -> None:
    cache = HistoryCache(max_conversations=2, max_bytes=1_000)
    cache.remember("a", [message(1)], keep=10)
    cache.remember("b", [message(1)], keep=10)
    assert cache.get("a") is not None  # `a` is now the most recently used
    cache.remember("c", [message(1)], keep=10)
    assert cache.get("b") is None
    assert cache.get("a") is not None
    cache.remember("big", [message(1, "x" * 995)], keep=10)
    assert cache.get("big") is not None
    assert cache.get("a") is None
    assert cache.get("c") is None


def test_forget() -> None:
    cache = HistoryCache()
    cache.remember("c", [message(1)], keep=10)
    cache.forget("c")
    assert cache.get("c") is None
