"""Identity's request and response bodies. Stored records never leave the service: these are built from them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from functions.identity import passwords
from shared.auth.principal import ALL_PERMISSIONS, PERMISSIONS
from shared.http.models import ApiModel, JsonBool

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
Email = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=254)]
# An address a new account or an invitation is sent to: checked by `_valid_email`, documented as an email.
NewEmail = Annotated[Email, Field(json_schema_extra={"format": "email"})]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# A password being set: the policy (`passwords.check_policy`, answering `weak_password`) decides, and the
# document says what it enforces.
NewPassword = Annotated[
    Password,
    Field(
        json_schema_extra={"minLength": passwords.MIN_LENGTH, "maxLength": passwords.MAX_LENGTH},
        description=f"{passwords.MIN_LENGTH} to {passwords.MAX_LENGTH} characters, at least "
        f"{passwords.MIN_DISTINCT_CHARACTERS} of them different",
    ),
]
# Checked by the service (`unknown_permission`); the document lists what it accepts.
Permission = Annotated[str, Field(json_schema_extra={"enum": [ALL_PERMISSIONS, *sorted(PERMISSIONS)]})]
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,39}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _valid_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("is not an email address")
    return value


class RegisterRequest(ApiModel):
    email: NewEmail
    password: NewPassword
    name: Name | None = None

    _email = field_validator("email")(_valid_email)


class LoginRequest(ApiModel):
    email: Email
    password: Password


class RefreshRequest(ApiModel):
    refresh_token: str | None = Field(default=None, max_length=4096)


class ForgotPasswordRequest(ApiModel):
    email: Email


class ResetPasswordRequest(ApiModel):
    token: Annotated[str, StringConstraints(min_length=10, max_length=200)]
    password: NewPassword


class UserPublic(ApiModel):
    id: str
    email: str
    name: str | None
    avatar_url: str | None
    timezone: str | None
    roles: list[str]
    # deleting: the user asked for their account to go; every credential is refused while the deletion job runs.
    status: Literal["active", "invited", "disabled", "deleting"]
    created_at: datetime


class AuthResponse(ApiModel):
    user: UserPublic
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class TokenStatus(ApiModel):
    valid: bool
    user_id: str
    expires_at: int | None
    auth_type: Literal["token", "api_key"]


class SessionPublic(ApiModel):
    """A signed-in session (a refresh-token family): where it was last used from, and whether the caller's
    credential is from it."""

    session_id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class ProfileUpdate(ApiModel):
    name: Name | None = None
    avatar_url: Annotated[str, StringConstraints(pattern=r"^https://\S+$", max_length=2048)] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone such as Europe/Paris") from None
        return value


class UserSettings(ApiModel):
    default_provider: Annotated[str, StringConstraints(max_length=40)] | None = None
    default_model: Annotated[str, StringConstraints(max_length=120)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=200_000)] | None = None
    system_prompt: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    enabled_mcp_servers: Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=50)] = []
    memory_enabled: JsonBool = True


class SettingsUpdate(ApiModel):
    """Fields to change; those left out keep their value, an explicit null clears an optional one."""

    default_provider: Annotated[str, StringConstraints(max_length=40)] | None = None
    default_model: Annotated[str, StringConstraints(max_length=120)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2, strict=True)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=200_000, strict=True)] | None = None
    system_prompt: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    enabled_mcp_servers: (
        Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=50)] | None
    ) = None
    memory_enabled: JsonBool | None = None


class ApiKeyCreate(ApiModel):
    name: Name
    # Omitted: the key may do whatever its owner's roles allow, now and later ("*").
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=20)] = ["*"]
    expires_in_days: Annotated[int, Field(ge=1, le=3650, strict=True)] | None = None


class ApiKeyPublic(ApiModel):
    id: str
    name: str
    prefix: str
    permissions: list[str]
    created_at: datetime
    expires_at: int | None


class ApiKeyCreated(ApiKeyPublic):
    key: str


class InviteUserRequest(ApiModel):
    email: NewEmail
    name: Name | None = None
    roles: Annotated[list[RoleName], Field(min_length=1, max_length=10)] = ["member"]

    _email = field_validator("email")(_valid_email)


class RolesUpdate(ApiModel):
    roles: Annotated[list[RoleName], Field(min_length=1, max_length=10)]


class UserStatusUpdate(ApiModel):
    """`disabled` refuses every credential of the user at once; `active` lets them sign in again."""

    status: Literal["active", "disabled"]


class RoleCreate(ApiModel):
    name: RoleName
    description: Annotated[str, StringConstraints(max_length=200)] | None = None
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=50)]


class RolePublic(ApiModel):
    name: str
    description: str | None
    permissions: list[str]
    builtin: bool


class AccountDeletion(ApiModel):
    """The account's password, which a signed-in user must give; an API key holding `users.delete_self` needs
    none."""

    password: Password | None = None


class DeletionStarted(ApiModel):
    job_id: str
