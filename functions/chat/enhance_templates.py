"""Text enhancement's field types: the built-in templates, the stage's own (`ENHANCE_FIELD_TYPES`, validated at
cold start by `shared.settings`), and how a request's text and context become a model's prompt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.settings import EnhanceFieldType, get_settings

_RULES = (
    " Answer with the improved text only: no preamble, no quotes around it, no notes after it."
    " Keep the facts the text and its context give; never invent names, numbers or dates."
)

BUILT_IN_FIELD_TYPES: dict[str, EnhanceFieldType] = {
    "email": EnhanceFieldType(
        label="Email",
        context_keys=("recipientName", "recipientRole", "senderName", "subject", "company"),
        system="You improve emails: clear, courteous, to the point, with a greeting and a sign-off that fit." + _RULES,
        max_tokens=1_024,
    ),
    "title": EnhanceFieldType(
        label="Title",
        context_keys=("audience", "topic"),
        system="You write titles: short (at most twelve words), specific and plain, without a final period." + _RULES,
        max_tokens=64,
    ),
    "summary": EnhanceFieldType(
        label="Summary",
        context_keys=("audience", "maxWords"),
        system="You summarize: the essentials of the text, in a few sentences, in the order they matter." + _RULES,
        max_tokens=512,
    ),
    "description": EnhanceFieldType(
        label="Description",
        context_keys=("productName", "audience", "features"),
        system="You improve descriptions: concrete, well ordered, easy to scan." + _RULES,
        max_tokens=768,
    ),
    "bio": EnhanceFieldType(
        label="Bio",
        context_keys=("name", "role", "company", "audience"),
        system="You improve short biographies: third person unless the text is in the first, warm and factual."
        + _RULES,
        max_tokens=512,
    ),
    "social_post": EnhanceFieldType(
        label="Social post",
        context_keys=("platform", "audience", "hashtags"),
        system="You improve social media posts: engaging, within the platform's customary length, hashtags only "
        "if the text or its context has them." + _RULES,
        max_tokens=400,
    ),
    "message_reply": EnhanceFieldType(
        label="Message reply",
        context_keys=("originalMessage", "senderName", "relationship"),
        system="You improve replies to a message: they answer what the original message asks, in a fitting "
        "register; with no draft, you write the reply." + _RULES,
        prompt="{context}\n\n{instructions}\n{tone}\n{language}\n\nThe draft reply:\n{text}",
        max_tokens=768,
    ),
    "generic": EnhanceFieldType(
        label="Text",
        system="You improve text: clearer, correct, and in the same voice." + _RULES,
    ),
}


@lru_cache(maxsize=1)
def field_types() -> dict[str, EnhanceFieldType]:
    """The field types this stage knows: the built-ins, then the stage's own (which replace a built-in of the
    same id)."""
    return {**BUILT_IN_FIELD_TYPES, **get_settings().enhance_field_types}


_TEXT_MARK = "\x00text\x00"


@dataclass(frozen=True)
class EnhancePrompt:
    system: str
    prompt: str
    max_tokens: int


def render(
    field_type: EnhanceFieldType,
    *,
    text: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
    related: Mapping[str, Any] | None = None,
    instructions: str | None = None,
    tone: str | None = None,
    language: str | None = None,
) -> EnhancePrompt:
    """The prompt of one enhancement. The context carries the entity and only the `related` values the field type
    names (in its order); each part the request leaves out is empty, and the blank lines it leaves are folded."""
    related = related or {}
    context_lines = []
    if entity_type or entity_id:
        context_lines.append(f"- {entity_type or 'entity'}" + (f" {entity_id}" if entity_id else ""))
    for key in field_type.context_keys:
        value = related.get(key)
        if value is not None and value != "":
            context_lines.append(f"- {key}: {_plain(value)}")
    parts = {
        "text": _TEXT_MARK,
        "context": "Context:\n" + "\n".join(context_lines) if context_lines else "",
        "instructions": f"Instructions: {instructions}" if instructions else "",
        "tone": f"Tone: {tone}" if tone else "",
        "language": f"Write in this language: {language}" if language else "Write in the language of the text.",
    }
    # Parts are substituted, never formatted themselves: braces in the user's text stay as they are; the text goes
    # in after the folding, so its own blank lines stay too.
    filled = _fold_blank_lines(field_type.prompt.format_map(parts))
    return EnhancePrompt(field_type.system, filled.replace(_TEXT_MARK, text), field_type.max_tokens)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())


def _fold_blank_lines(prompt: str) -> str:
    lines: list[str] = []
    for line in prompt.strip().splitlines():
        if line.strip() or (lines and lines[-1].strip()):
            lines.append(line.rstrip())
    return "\n".join(lines).strip()
