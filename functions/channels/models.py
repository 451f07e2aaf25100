"""The channels' request and response bodies, and the inbound message the webhook queues for the worker.

Stored records never leave the service: these are built from them, and no model here carries a secret value out
(a channel's tokens and app secret are shown masked, their last four characters at most)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, StringConstraints, model_validator

from shared.http.models import ApiModel, JsonBool

ChannelType = Literal["whatsapp", "messenger", "telegram"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
AgentId = Annotated[str, StringConstraints(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")]
PlatformId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# Telegram's secret token: 1-256 characters of A-Z, a-z, 0-9, _ and -.
TelegramSecret = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,256}$")]


class WhatsAppConfig(ApiModel):
    phone_number_id: PlatformId
    access_token: Secret
    app_secret: Secret
    verify_token: Secret


class MessengerConfig(ApiModel):
    page_id: PlatformId
    page_access_token: Secret
    app_secret: Secret
    verify_token: Secret


class TelegramConfig(ApiModel):
    bot_token: Secret
    secret_token: TelegramSecret


ChannelConfig = WhatsAppConfig | MessengerConfig | TelegramConfig
CONFIG_OF_TYPE: dict[str, type[ChannelConfig]] = {
    "whatsapp": WhatsAppConfig,
    "messenger": MessengerConfig,
    "telegram": TelegramConfig,
}
# The config fields that are secrets (sealed, shown masked), by channel type, in their wire spelling.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "whatsapp": ("accessToken", "appSecret", "verifyToken"),
    "messenger": ("pageAccessToken", "appSecret", "verifyToken"),
    "telegram": ("botToken", "secretToken"),
}


def config_for(channel_type: str, config: dict[str, Any]) -> ChannelConfig:
    """`config` validated as the config of a `channel_type` channel (422 through pydantic otherwise)."""
    return CONFIG_OF_TYPE[channel_type].model_validate(config)


class ChannelCreate(ApiModel):
    type: ChannelType
    name: Name
    agent_id: AgentId | None = None
    enabled: JsonBool = True
    # Checked against `type` (a WhatsApp channel's config is {phoneNumberId, accessToken, appSecret, verifyToken}).
    config: dict[str, Any]

    @model_validator(mode="after")
    def _config_matches_type(self) -> ChannelCreate:
        config_for(self.type, self.config)
        return self


class ChannelUpdate(ApiModel):
    """Fields to change; those left out keep their value. `type` is fixed. In `config`, a secret sent back as it was
    shown (masked) keeps its stored value; `agentId` null takes the channel's agent away (the stage's default model
    answers)."""

    name: Name | None = None
    agent_id: AgentId | None = None
    enabled: JsonBool | None = None
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ChannelUpdate:
        for name in ("name", "enabled", "config"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{type(self).model_fields[name].alias} cannot be null")
        return self


class ChannelPublic(ApiModel):
    id: str
    type: ChannelType
    name: str
    agent_id: str | None
    enabled: bool
    # Plain fields as stored; secrets masked ("••••1234").
    config: dict[str, Any]
    # Where the platform delivers: paste it into the platform's console (Meta) or let `test` set it (Telegram).
    webhook_url: str
    owner_id: str
    created_at: datetime
    updated_at: datetime


class ChannelTest(ApiModel):
    ok: bool
    details: dict[str, Any] | None = None
    error: str | None = None


class InboundMessage(BaseModel):
    """One inbound text message, as the webhook queues it and the worker answers it (snake_case JSON)."""

    channel_id: str
    type: ChannelType
    # The platform's id of the message: deduplicates redeliveries.
    message_id: str
    # Whom to answer: the WhatsApp number, the Messenger PSID, the Telegram chat id.
    contact_id: str
    contact_name: str | None = None
    text: str
