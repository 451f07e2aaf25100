"""Who is calling, and what they may do: permissions, the built-in roles, and the verified principal."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from shared.errors import Forbidden, Unauthorized

ALL_PERMISSIONS = "*"

# Every permission a route checks. A role may also grant ALL_PERMISSIONS.
PERMISSIONS: dict[str, str] = {
    "ai.chat": "Chat with the models",
    "ai.enhance.create": "Start text enhancement sessions",
    "ai.playground": "Compare models in the playground",
    "mcp.use": "Use enabled MCP tool servers in chat",
    "mcp.manage": "Register and change MCP tool servers",
    "agents.manage": "Create and change the stage's agents and their documents",
    "channels.manage": "Connect WhatsApp, Messenger and Telegram channels to agents",
    "webhooks.subscribe": "Subscribe own URLs to own events (outbound webhooks)",
    "webhooks.manage": "Subscribe URLs to every user's events (stage-wide webhook subscriptions)",
    "analytics.read": "Read the stage's analytics and scrape its Prometheus metrics",
    "audit.read": "Read every user's security events (the stage's audit log)",
    "apikeys.manage": "Create and revoke own API keys",
    "users.manage": "Invite users, assign roles, define custom roles",
    "users.delete_self": "Delete the caller's own account and all its data, without the password (an API key)",
}

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({ALL_PERMISSIONS}),
    "member": frozenset(
        {
            "ai.chat",
            "ai.enhance.create",
            "ai.playground",
            "mcp.use",
            "apikeys.manage",
            "webhooks.subscribe",
            "users.delete_self",
        }
    ),
    "viewer": frozenset(),
}
DEFAULT_ROLE = "member"


def permissions_of(roles: Iterable[str], custom_roles: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The union of what `roles` grant; an unknown role grants nothing."""
    granted: set[str] = set()
    for role in roles:
        granted |= BUILTIN_ROLES.get(role) or frozenset(custom_roles.get(role, ()))
    return frozenset(granted)


def grants(permissions: Iterable[str], permission: str) -> bool:
    held = set(permissions)
    return ALL_PERMISSIONS in held or permission in held


@dataclass(frozen=True)
class Principal:
    """A verified caller: a user acting through an access token or one of their API keys."""

    user_id: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    auth_type: Literal["token", "api_key"]
    expires_at: int | None = None
    session_id: str | None = None
    api_key_id: str | None = None
    # When the roles and permissions above were read (epoch ms): a token's issue time, an API key's resolution.
    # A revocation of the user, or of one of their roles, refuses principals verified before it.
    verified_at_ms: int | None = None

    def can(self, permission: str) -> bool:
        return grants(self.permissions, permission)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise Forbidden(f"This needs the '{permission}' permission", code="permission_denied")

    def to_authorizer_context(self) -> dict[str, str | int]:
        """The HTTP API authorizer's `context`: flat strings and numbers, as API Gateway passes them on."""
        context: dict[str, str | int] = {
            "userId": self.user_id,
            "roles": " ".join(self.roles),
            "permissions": " ".join(sorted(self.permissions)),
            "authType": self.auth_type,
        }
        if self.expires_at is not None:
            context["expiresAt"] = self.expires_at
        if self.session_id:
            context["sessionId"] = self.session_id
        if self.api_key_id:
            context["apiKeyId"] = self.api_key_id
        if self.verified_at_ms is not None:
            context["verifiedAt"] = self.verified_at_ms
        return context

    @classmethod
    def from_authorizer_context(cls, context: Mapping[str, object]) -> Principal:
        """Rebuild the principal the authorizer verified, or raise the error it found.

        API Gateway may serve a cached answer past the token's expiry or after a revocation, so both are checked
        again here.
        """
        from shared.auth.revocations import ensure_not_revoked

        if context.get("authError"):
            raise Unauthorized(str(context.get("authMessage") or "Invalid credentials"), code=str(context["authError"]))
        user_id = context.get("userId")
        if not isinstance(user_id, str) or not user_id:
            raise Unauthorized("Invalid credentials", code="invalid_token")
        expires_at = int(str(context["expiresAt"])) if context.get("expiresAt") not in (None, "") else None
        if expires_at is not None and expires_at <= time.time():
            raise Unauthorized("The access token has expired", code="token_expired")
        auth_type: Literal["token", "api_key"] = "api_key" if context.get("authType") == "api_key" else "token"
        principal = cls(
            user_id=user_id,
            roles=tuple(str(context.get("roles") or "").split()),
            permissions=frozenset(str(context.get("permissions") or "").split()),
            auth_type=auth_type,
            expires_at=expires_at,
            session_id=str(context["sessionId"]) if context.get("sessionId") else None,
            api_key_id=str(context["apiKeyId"]) if context.get("apiKeyId") else None,
            # Unknown (an answer from before verification times were recorded): any later change refuses it.
            verified_at_ms=int(str(context["verifiedAt"])) if context.get("verifiedAt") not in (None, "") else None,
        )
        ensure_not_revoked(principal)
        return principal
