"""What Stratus says to and hears from WhatsApp (Cloud API), Messenger (Send API) and Telegram (Bot API).

Pure functions first (verifying a delivery, reading its text messages, splitting an answer at the platform's
limit), then the HTTP calls (sending a message with bounded retries, asking who credentials belong to, Telegram's
`setWebhook`). The platforms' bases are the stage's `GRAPH_API_BASE_URL` and `TELEGRAM_API_BASE_URL`, operator
settings (the fakes' in tests), so they are called directly, not through the outbound guard for user URLs.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.observability import logger
from shared.settings import get_settings

if TYPE_CHECKING:
    import httpx2

# The longest text one message may carry, in characters.
MESSAGE_LIMITS = {"whatsapp": 4096, "messenger": 2000, "telegram": 4096}
SIGNATURE_PREFIX = "sha256="
SEND_ATTEMPTS = 4
# Backoff between attempts: 0.5 s, 1 s, 2 s... and never more than this, whatever Retry-After asks.
BACKOFF_BASE_SECONDS = 0.5
MAX_WAIT_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str
    contact_id: str
    contact_name: str | None
    text: str


class SendFailed(RuntimeError):
    """The platform did not take a message after the retries (or refused it for good)."""

    def __init__(self, message: str, *, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


# Verifying deliveries ----------------------------------------------------------------------------------------


def meta_signature_valid(body: bytes, header: str | None, app_secret: str) -> bool:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>`, compared in constant
    time."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header[len(SIGNATURE_PREFIX) :].strip().lower().encode())


def meta_signature(body: bytes, app_secret: str) -> str:
    """The header value Meta sends with `body` (the fakes and tests sign with it)."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def secret_token_valid(header: str | None, secret_token: str) -> bool:
    """Telegram's `X-Telegram-Bot-Api-Secret-Token`, compared in constant time."""
    return header is not None and hmac.compare_digest(header.encode(), secret_token.encode())


# Reading deliveries ------------------------------------------------------------------------------------------


def text_messages(channel_type: str, payload: Any) -> list[ParsedMessage]:
    """The text messages a delivery carries, in order. Statuses, reactions, media, echoes, deliveries, reads,
    edits and any shape this does not know give nothing."""
    readers: dict[str, Callable[[Any], Iterator[ParsedMessage]]] = {
        "whatsapp": _whatsapp_messages,
        "messenger": _messenger_messages,
        "telegram": _telegram_messages,
    }
    try:
        return list(readers[channel_type](payload))
    except (AttributeError, KeyError, TypeError, ValueError):
        logger.info("A delivery of an unknown shape was ignored", extra={"channelType": channel_type})
        return []


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    for item in value if isinstance(value, list) else ():
        if isinstance(item, dict):
            yield item


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _whatsapp_messages(payload: Any) -> Iterator[ParsedMessage]:
    for entry in _objects(payload.get("entry")):
        for change in _objects(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            names = {
                str(contact.get("wa_id")): (contact.get("profile") or {}).get("name")
                for contact in _objects(value.get("contacts"))
            }
            for message in _objects(value.get("messages")):
                text = _text((message.get("text") or {}).get("body")) if message.get("type") == "text" else None
                sender, message_id = message.get("from"), message.get("id")
                if text and isinstance(sender, str) and isinstance(message_id, str):
                    name = names.get(sender)
                    yield ParsedMessage(message_id, sender, name if isinstance(name, str) else None, text)


def _messenger_messages(payload: Any) -> Iterator[ParsedMessage]:
    for entry in _objects(payload.get("entry")):
        for event in _objects(entry.get("messaging")):
            message = event.get("message")
            if not isinstance(message, dict) or message.get("is_echo"):
                continue
            text, message_id = _text(message.get("text")), message.get("mid")
            sender = (event.get("sender") or {}).get("id")
            if text and isinstance(message_id, str) and isinstance(sender, str | int):
                yield ParsedMessage(message_id, str(sender), None, text)


def _telegram_messages(payload: Any) -> Iterator[ParsedMessage]:
    message = payload.get("message")
    if not isinstance(message, dict):
        return  # edited_message, channel_post, callback_query, my_chat_member...
    text, chat = _text(message.get("text")), message.get("chat")
    message_id = message.get("message_id")
    if not text or not isinstance(chat, dict) or not isinstance(chat.get("id"), int) or not isinstance(message_id, int):
        return
    sender: dict[str, Any] = message["from"] if isinstance(message.get("from"), dict) else chat
    name = " ".join(str(sender[key]) for key in ("first_name", "last_name") if isinstance(sender.get(key), str))
    # A Telegram message id is unique within its chat.
    yield ParsedMessage(f"{chat['id']}:{message_id}", str(chat["id"]), name or sender.get("username"), text)


# Splitting answers -------------------------------------------------------------------------------------------

_BOUNDARIES = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?])\s+"), re.compile(r"\s+"))


def split_message(text: str, limit: int) -> list[str]:
    """`text` in parts of at most `limit` characters, cut at the last paragraph break that fits, else the last
    sentence end, else the last space, else hard at the limit. Parts keep their order; none is empty."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = None
        for boundary in _BOUNDARIES:
            ends = [match for match in boundary.finditer(window) if 0 < match.start() <= limit]
            if ends:
                cut = ends[-1]
                break
        head, rest = (rest[:limit], rest[limit:]) if cut is None else (rest[: cut.start()], rest[cut.end() :])
        if head.strip():
            parts.append(head.rstrip())
        rest = rest.lstrip()
    if rest:
        parts.append(rest)
    return parts


# Calling the platforms ---------------------------------------------------------------------------------------


def _client() -> httpx2.Client:
    import logging

    import httpx2

    # The client logs each request's URL at INFO, and a Telegram URL carries the bot's token: never a log line.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    return httpx2.Client(timeout=HTTP_TIMEOUT_SECONDS, trust_env=False, follow_redirects=False)


def _retry_wait(response: httpx2.Response | None, attempt: int) -> float:
    backoff: float = BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)
    asked: Any = None
    if response is not None:
        # Graph API: the Retry-After header; Bot API: `parameters.retry_after` in the body.
        asked = response.headers.get("retry-after") or (_json(response).get("parameters") or {}).get("retry_after")
    with contextlib.suppress(TypeError, ValueError):
        backoff = max(backoff, float(asked)) if asked is not None else backoff
    return float(min(backoff, MAX_WAIT_SECONDS))


def post_with_retries(
    url: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None, sleep: Callable[[float], None]
) -> dict[str, Any]:
    """POST `body` as JSON; on 429, a 5xx or a broken connection, again after a backoff (Retry-After honoured,
    bounded), `SEND_ATTEMPTS` times in all. Another 4xx is final. Returns the platform's JSON answer."""
    import httpx2

    status: int | None = None
    error = "not sent"
    with _client() as client:
        for attempt in range(1, SEND_ATTEMPTS + 1):
            response: httpx2.Response | None = None
            try:
                response = client.post(url, json=dict(body), headers=dict(headers or {}))
            except httpx2.TransportError as failure:
                status, error = None, f"connection failed: {type(failure).__name__}"
            else:
                status = response.status_code
                if status < 300:
                    answer = response.json() if response.content else {}
                    return answer if isinstance(answer, dict) else {}
                error = _platform_reason(_json(response), status)
                if status != 429 and status < 500:
                    raise SendFailed(error, status=status, attempts=attempt)
            if attempt < SEND_ATTEMPTS:
                sleep(_retry_wait(response, attempt))
    raise SendFailed(error, status=status, attempts=SEND_ATTEMPTS)


def send_text(
    channel_type: str,
    config: Mapping[str, Any],
    secrets: Mapping[str, str],
    recipient: str,
    text: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send one part (at most the platform's limit) to `recipient`, in the request shape API.md gives."""
    settings = get_settings()
    if channel_type == "whatsapp":
        post_with_retries(
            f"{settings.graph_api_base_url}/{config['phoneNumberId']}/messages",
            {"messaging_product": "whatsapp", "to": recipient, "type": "text", "text": {"body": text}},
            headers={"authorization": f"Bearer {secrets['accessToken']}"},
            sleep=sleep,
        )
    elif channel_type == "messenger":
        post_with_retries(
            f"{settings.graph_api_base_url}/me/messages",
            {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": {"text": text}},
            headers={"authorization": f"Bearer {secrets['pageAccessToken']}"},
            sleep=sleep,
        )
    else:
        post_with_retries(
            f"{settings.telegram_api_base_url}/bot{secrets['botToken']}/sendMessage",
            {"chat_id": int(recipient) if recipient.lstrip("-").isdigit() else recipient, "text": text},
            sleep=sleep,
        )


def identify(channel_type: str, config: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, Any]:
    """Who the credentials belong to (the phone number, the page, the bot): the platform's own answer. Raises
    `SendFailed` with the platform's reason when it refuses them or cannot be reached."""
    import httpx2

    settings = get_settings()
    if channel_type == "whatsapp":
        url, headers = f"{settings.graph_api_base_url}/{config['phoneNumberId']}", secrets["accessToken"]
    elif channel_type == "messenger":
        url, headers = f"{settings.graph_api_base_url}/me", secrets["pageAccessToken"]
    else:
        url, headers = f"{settings.telegram_api_base_url}/bot{secrets['botToken']}/getMe", ""
    try:
        with _client() as client:
            response = client.get(url, headers={"authorization": f"Bearer {headers}"} if headers else {})
    except httpx2.TransportError as failure:
        raise SendFailed(
            f"the platform could not be reached: {type(failure).__name__}", status=None, attempts=1
        ) from None
    answer = _json(response)
    if response.status_code >= 300 or (channel_type == "telegram" and answer.get("ok") is not True):
        raise SendFailed(_platform_reason(answer, response.status_code), status=response.status_code, attempts=1)
    return dict(answer.get("result") or {}) if channel_type == "telegram" else answer


def set_telegram_webhook(secrets: Mapping[str, str], webhook_url: str) -> None:
    """Point the bot at `webhook_url`, with the channel's secret token in every delivery's header."""
    settings = get_settings()
    body = {"url": webhook_url, "secret_token": secrets["secretToken"], "allowed_updates": ["message"]}
    with _client() as client:
        response = client.post(f"{settings.telegram_api_base_url}/bot{secrets['botToken']}/setWebhook", json=body)
    answer = _json(response)
    if response.status_code >= 300 or answer.get("ok") is not True:
        raise SendFailed(_platform_reason(answer, response.status_code), status=response.status_code, attempts=1)


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        answer = json.loads(response.content or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _platform_reason(answer: Mapping[str, Any], status: int) -> str:
    error = answer.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])  # Graph API
    if answer.get("description"):
        return str(answer["description"])  # Bot API
    return f"the platform answered {status}"
