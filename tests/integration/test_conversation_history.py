"""A reply's history is read once per container: later replies to the same conversation read only what was added
since, and nothing when nothing was (the conversation's message counter, read for the access check, tells)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import pytest
from botocore.client import BaseClient

from functions.conversations import jobs as conversation_jobs
from functions.conversations import service as conversations
from functions.conversations import store
from functions.conversations.history import HistoryCache
from functions.conversations.models import ConversationCreate
from functions.identity import service as identity
from shared.auth.principal import Principal
from shared.auth.verify import verify_credential
from shared.errors import NotFound

pytestmark = pytest.mark.usefixtures("aws")


def user(email: str) -> Principal:
    return verify_credential(identity.register(email, "correct horse battery", None).body.access_token)


@contextmanager
def dynamodb_calls() -> Iterator[list[str]]:
    calls: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        # DynamoDB's alone: the events the writes publish go to SQS from the outbox's thread meanwhile.
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return make_api_call(self, operation, params)

    with patch.object(BaseClient, "_make_api_call", counting):
        yield calls


@contextmanager
def another_container() -> Iterator[None]:
    """Writes made meanwhile by another container: this one's cache does not see them."""
    with patch.object(conversations, "_histories", HistoryCache()):
        yield


def contents(history: list[Any]) -> list[str]:
    return [message.content for message in history]


def test_a_second_reply_reads_no_history_and_sees_the_messages_written_here() -> None:
    ada = user("ada@example.com")
    conversation = conversations.create_conversation(ada, ConversationCreate(title="t"))
    for text in ("one", "two", "three"):
        conversations.append_message(ada, conversation.id, "user", text)

    first = conversations.conversation_for_reply(ada, conversation.id, 200).history
    conversations.append_message(ada, conversation.id, "user", "four")
    conversations.append_message(ada, conversation.id, "assistant", "five")
    with dynamodb_calls() as calls:
        second = conversations.conversation_for_reply(ada, conversation.id, 200).history

    assert contents(first) == ["one", "two", "three"]
    assert contents(second) == ["one", "two", "three", "four", "five"]
    assert calls == ["GetItem"]  # the access check; the counter says nothing else was added


def test_messages_another_container_added_are_read_and_only_they() -> None:
    ada = user("ada@example.com")
    conversation = conversations.create_conversation(ada, ConversationCreate(title="t"))
    conversations.append_message(ada, conversation.id, "user", "one")
    conversations.conversation_for_reply(ada, conversation.id, 200)
    with another_container():
        conversations.append_message(ada, conversation.id, "assistant", "two")
        conversations.append_message(ada, conversation.id, "user", "three")

    with dynamodb_calls() as calls:
        history = conversations.conversation_for_reply(ada, conversation.id, 200).history
    assert contents(history) == ["one", "two", "three"]
    assert calls == ["GetItem", "Query"]
    newer = store.messages_after(conversation.id, 1)
    assert [record.seq for record in newer] == [2, 3]


def test_a_place_claimed_but_not_yet_stored_is_not_missed_once_it_lands() -> None:
    ada = user("ada@example.com")
    conversation = conversations.create_conversation(ada, ConversationCreate(title="t"))
    conversations.append_message(ada, conversation.id, "user", "one")
    conversations.conversation_for_reply(ada, conversation.id, 200)
    record = store.get_conversation(conversation.id)
    assert record is not None
    slow_writer_seq = store.claim_message_slot(record, store.now())  # a writer elsewhere, mid-append
    with another_container():
        conversations.append_message(ada, conversation.id, "user", "three")

    meanwhile = conversations.conversation_for_reply(ada, conversation.id, 200).history
    store.put_message(
        store.MessageRecord(
            store.conversation_pk(conversation.id), store.message_sk(slow_writer_seq),
            gsi3pk=store.messages_partition(ada.user_id), gsi3sk="slow", message_id="slow",
            conversation_id=conversation.id, seq=slow_writer_seq, role="assistant", author_id=ada.user_id,
        ),
        "two",
    )  # fmt: skip
    after = conversations.conversation_for_reply(ada, conversation.id, 200).history

    assert contents(meanwhile) == ["one", "three"]
    assert contents(after) == ["one", "two", "three"]


def test_a_long_history_keeps_only_the_newest_messages() -> None:
    ada = user("ada@example.com")
    conversation = conversations.create_conversation(ada, ConversationCreate(title="t"))
    for n in range(6):
        conversations.append_message(ada, conversation.id, "user", f"m{n}")
    first = conversations.conversation_for_reply(ada, conversation.id, 4).history
    with another_container():
        for n in range(6, 12):  # more than the window: read afresh, not as an extension
            conversations.append_message(ada, conversation.id, "user", f"m{n}")
    second = conversations.conversation_for_reply(ada, conversation.id, 4).history
    conversations.append_message(ada, conversation.id, "user", "m12")
    third = conversations.conversation_for_reply(ada, conversation.id, 4).history

    assert contents(first) == ["m2", "m3", "m4", "m5"]
    assert contents(second) == ["m8", "m9", "m10", "m11"]
    assert contents(third) == ["m9", "m10", "m11", "m12"]


def test_a_cached_history_is_still_behind_the_access_check() -> None:
    ada, bob = user("ada@example.com"), user("bob@example.com")
    conversation = conversations.create_conversation(ada, ConversationCreate(title="t"))
    conversations.append_message(ada, conversation.id, "user", "private")
    conversations.conversation_for_reply(ada, conversation.id, 200)

    with pytest.raises(NotFound):
        conversations.conversation_for_reply(bob, conversation.id, 200)
    conversations.delete_conversation(ada, conversation.id)
    with pytest.raises(NotFound):
        conversations.conversation_for_reply(ada, conversation.id, 200)


def test_a_reply_thread_appends_without_checking_access_again() -> None:
    ada = user("ada@example.com")
    conversation = conversations.create_conversation(ada, ConversationCreate(title="t"))
    thread = conversations.conversation_for_reply(ada, conversation.id, 200)

    with dynamodb_calls() as calls:
        thread.append("user", "hello")
        thread.append("assistant", "hi", metadata={"model": "m"}, message_id="reply-1")

    assert calls == ["UpdateItem", "PutItem", "UpdateItem", "PutItem"]  # a place, then the message; no GetItem
    stored = conversations.list_messages(ada, conversation.id, limit=10, cursor=None).items
    assert [(m.seq, m.role, m.content, m.author_id) for m in stored] == [
        (1, "user", "hello", ada.user_id),
        (2, "assistant", "hi", ada.user_id),
    ]
    assert stored[1].id == "reply-1"
    assert contents(conversations.conversation_for_reply(ada, conversation.id, 200).history) == ["hello", "hi"]


def test_deleting_a_users_data_leaves_none_of_their_histories_cached() -> None:
    ada = user("ada@example.com")
    kept, deleted = (conversations.create_conversation(ada, ConversationCreate(title=t)) for t in ("a", "b"))
    for conversation in (kept, deleted):
        conversations.append_message(ada, conversation.id, "user", "private")
        conversations.conversation_for_reply(ada, conversation.id, 200)

    conversations.delete_conversation(ada, deleted.id)
    assert conversations._histories.get(deleted.id) is None
    assert conversations._histories.get(kept.id) is not None
    assert conversation_jobs.delete_page(ada.user_id, None).cursor is None
    assert conversations._histories.get(kept.id) is None
