"""What the channels read from and send to the platforms, without a network: signatures, the text messages of
real payload shapes, and answers split at the platform's limit."""

from __future__ import annotations

import json

import pytest

from functions.channels.platforms import (
    MESSAGE_LIMITS,
    meta_signature,
    meta_signature_valid,
    secret_token_valid,
    split_message,
    text_messages,
)

SECRET = "app-secret"


def test_a_meta_signature_is_checked_over_the_exact_bytes() -> None:
    body = json.dumps({"text": "café \u00e9 https://x/y"}, ensure_ascii=True).replace("/", "\\/").encode()
    signature = meta_signature(body, SECRET)
    assert signature.startswith("sha256=")
    assert meta_signature_valid(body, signature, SECRET)
    assert meta_signature_valid(body, signature.upper().replace("SHA256=", "sha256="), SECRET)
    # The same JSON serialised again, as a framework would: other bytes, so refused.
    reserialised = json.dumps(json.loads(body)).encode()
    assert reserialised != body
    assert not meta_signature_valid(reserialised, signature, SECRET)
    assert not meta_signature_valid(body, signature, "another-secret")
    assert not meta_signature_valid(body, None, SECRET)
    assert not meta_signature_valid(body, signature.removeprefix("sha256="), SECRET)
    assert not meta_signature_valid(body, "sha256=", SECRET)


def test_a_telegram_secret_token_must_match_exactly() -> None:
    assert secret_token_valid("s3cret-token", "s3cret-token")
    assert not secret_token_valid("s3cret-toke", "s3cret-token")
    assert not secret_token_valid(None, "s3cret-token")


def test_whatsapp_text_messages_with_their_contacts_names_and_no_statuses() -> None:
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "contacts": [{"profile": {"name": "Zoë"}, "wa_id": "1555"}],
        "messages": [
            {"from": "1555", "id": "wamid.1", "type": "text", "text": {"body": "hello"}},
            {"from": "1555", "id": "wamid.2", "type": "image", "image": {"id": "media"}},
            {"from": "1666", "id": "wamid.3", "type": "text", "text": {"body": "no name"}},
        ],
    }}, {"field": "messages", "value": {"statuses": [{"id": "wamid.0", "status": "read"}]}}]}]}  # fmt: skip
    messages = text_messages("whatsapp", payload)
    assert [(m.message_id, m.contact_id, m.contact_name, m.text) for m in messages] == [
        ("wamid.1", "1555", "Zoë", "hello"),
        ("wamid.3", "1666", None, "no name"),
    ]


def test_messenger_messages_without_echoes_deliveries_and_reads() -> None:
    payload = {"object": "page", "entry": [{"messaging": [
        {"sender": {"id": "900"}, "message": {"mid": "m1", "text": "hi"}},
        {"sender": {"id": "100"}, "message": {"mid": "m2", "text": "echo", "is_echo": True}},
        {"sender": {"id": "900"}, "delivery": {"mids": ["m1"]}},
        {"sender": {"id": "900"}, "read": {"watermark": 1}},
        {"sender": {"id": "900"}, "message": {"mid": "m3", "attachments": [{"type": "image"}]}},
    ]}]}  # fmt: skip
    assert [(m.message_id, m.contact_id, m.text) for m in text_messages("messenger", payload)] == [("m1", "900", "hi")]


def test_telegram_message_text_only() -> None:
    message = {"message_id": 7, "chat": {"id": -100123}, "from": {"first_name": "Ada", "last_name": "L."},
               "text": "hello"}  # fmt: skip
    (parsed,) = text_messages("telegram", {"update_id": 1, "message": message})
    assert (parsed.message_id, parsed.contact_id, parsed.contact_name, parsed.text) == ("-100123:7", "-100123",
                                                                                        "Ada L.", "hello")  # fmt: skip
    assert text_messages("telegram", {"update_id": 2, "edited_message": message}) == []
    sticker = {**message, "text": None, "sticker": {"file_id": "x"}}
    assert text_messages("telegram", {"update_id": 3, "message": sticker}) == []


UNKNOWN_SHAPES = [
    None, [], "text", 5, {"entry": "x"}, {"entry": [{"changes": [5]}]}, {"message": {"chat": "x"}},
    {"entry": [{"messaging": [{"message": []}]}]},
]  # fmt: skip


@pytest.mark.parametrize("channel_type", ["whatsapp", "messenger", "telegram"])
@pytest.mark.parametrize("payload", UNKNOWN_SHAPES)
def test_unknown_shapes_give_nothing(channel_type: str, payload: object) -> None:
    assert text_messages(channel_type, payload) == []


def test_an_answer_is_split_at_paragraphs_then_sentences_then_words() -> None:
    paragraphs = ["a" * 30, "b" * 30, "c" * 30]
    assert split_message("\n\n".join(paragraphs), 70) == ["a" * 30 + "\n\n" + "b" * 30, "c" * 30]
    sentences = "One sentence here. Another one there. And a third."
    assert split_message(sentences, 40) == ["One sentence here. Another one there.", "And a third."]
    words = "word " * 10
    assert split_message(words, 12) == ["word word", "word word", "word word", "word word", "word word"]
    assert split_message("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_message("short", 10) == ["short"]
    assert split_message("", 10) == []


def test_the_platform_limits_are_the_platforms() -> None:
    assert MESSAGE_LIMITS == {"whatsapp": 4096, "messenger": 2000, "telegram": 4096}
    long = ("A sentence of some length goes here. " * 300).strip()
    parts = split_message(long, MESSAGE_LIMITS["messenger"])
    assert all(len(part) <= 2000 for part in parts)
    assert " ".join(parts) == long
