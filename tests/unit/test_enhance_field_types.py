"""Text enhancement's field types: the built-ins, a stage's own from `ENHANCE_FIELD_TYPES` (checked at cold start),
and the prompts their templates make of a request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.chat import enhance_templates
from shared.settings import EnhanceFieldType, get_settings, settings_from_environ

ROOT = Path(__file__).resolve().parents[2]
BUILT_INS = ["email", "title", "summary", "description", "bio", "social_post", "message_reply", "generic"]


@pytest.fixture
def stage_field_types(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stage defines `ticket_reply` and replaces `title`."""
    monkeypatch.setenv(
        "ENHANCE_FIELD_TYPES",
        json.dumps(
            {
                "ticket_reply": {
                    "label": "Ticket reply",
                    "system": "You answer support tickets.",
                    "contextKeys": ["customerName", "product"],
                    "prompt": "Customer facts:\n{context}\n\nDraft:\n{text}",
                },
                "title": {"label": "Headline", "system": "You write headlines."},
            }
        ),
    )
    get_settings.cache_clear()
    enhance_templates.field_types.cache_clear()
    yield
    monkeypatch.delenv("ENHANCE_FIELD_TYPES")
    get_settings.cache_clear()
    enhance_templates.field_types.cache_clear()


def test_the_built_in_field_types_each_have_a_label_and_a_template_that_takes_the_text() -> None:
    types = enhance_templates.field_types()
    assert list(types) == BUILT_INS
    for template in types.values():
        rendered = enhance_templates.render(template, text="THE TEXT")
        assert template.label
        assert rendered.system
        assert "THE TEXT" in rendered.prompt


def test_a_stage_adds_its_own_field_types_and_replaces_a_built_in(stage_field_types: None) -> None:
    types = enhance_templates.field_types()
    assert list(types) == [*BUILT_INS, "ticket_reply"]
    assert types["title"].label == "Headline"
    assert types["ticket_reply"].context_keys == ("customerName", "product")
    rendered = enhance_templates.render(
        types["ticket_reply"], text="We will fix it.", related={"customerName": "Ada", "mood": "angry"}
    )
    assert rendered == enhance_templates.EnhancePrompt(
        "You answer support tickets.", "Customer facts:\nContext:\n- customerName: Ada\n\nDraft:\nWe will fix it.", 1024
    )


def test_only_the_related_values_the_field_type_names_reach_the_prompt() -> None:
    email = enhance_templates.field_types()["email"]
    prompt = enhance_templates.render(
        email,
        text="hi bob, meeting moved",
        entity_type="contact",
        entity_id="c-42",
        related={"recipientName": "Bob Stone", "subject": "Meeting", "internalNotes": "owes us money"},
        instructions="Mention the new time, 3 pm",
        tone="friendly",
        language="English",
    ).prompt
    assert prompt == (
        "Context:\n- contact c-42\n- recipientName: Bob Stone\n- subject: Meeting\n\n"
        "Instructions: Mention the new time, 3 pm\nTone: friendly\nWrite in this language: English\n\n"
        "The text:\nhi bob, meeting moved"
    )
    assert "owes us money" not in prompt


def test_the_users_text_is_put_in_as_it_is_braces_and_blank_lines_included() -> None:
    text = "Use {placeholders} like {text}.\n\n\nThree lines down."
    prompt = enhance_templates.render(enhance_templates.field_types()["generic"], text=text).prompt
    assert prompt == f"Write in the language of the text.\n\nThe text:\n{text}"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{not json", "ENHANCE_FIELD_TYPES: Value error, must be a JSON object"),
        ('{"Bad Id": {"label": "x", "system": "y"}}', "field type ids must be lowercase"),
        ('{"memo": {"label": "Memo"}}', "ENHANCE_FIELD_TYPES.MEMO.SYSTEM: Field required"),
        ('{"memo": {"label": "Memo", "system": "s", "prompt": "{text} {mood}"}}', "names mood"),
        ('{"memo": {"label": "Memo", "system": "s", "prompt": "no text"}}', "must contain {text}"),
        ('{"memo": {"label": "Memo", "system": "s", "prompt": "{text"}}', "not a valid template"),
        ('{"memo": {"label": "Memo", "system": "s", "temperature": 2}}', "MEMO.TEMPERATURE: Extra inputs"),
    ],
)
def test_a_bad_stage_field_type_fails_the_settings_check_saying_what_is_wrong(value: str, says: str) -> None:
    with pytest.raises(RuntimeError, match="invalid Stratus settings") as refused:
        settings_from_environ({"STAGE": "test", "ENHANCE_FIELD_TYPES": value})
    assert says in str(refused.value)


def test_a_bad_stage_field_type_fails_the_chat_functions_init() -> None:
    environment = {**os.environ, "ENHANCE_FIELD_TYPES": '{"memo": {"label": "Memo", "system": "s", "prompt": "x"}}'}
    started = subprocess.run(
        [sys.executable, "-c", "import functions.chat.api"],
        check=False,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "ENHANCE_FIELD_TYPES.MEMO.PROMPT: Value error, must contain {text}" in started.stderr


def test_a_stage_field_type_takes_defaults_for_what_it_leaves_out() -> None:
    field_type = EnhanceFieldType.model_validate({"label": "Memo", "system": "You write memos."})
    assert field_type.context_keys == ()
    assert field_type.max_tokens == 1024
    assert "{text}" in field_type.prompt
