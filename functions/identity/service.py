"""Identity's logic: accounts, sessions with rotating refresh tokens, profiles, settings, API keys, roles.

Takes and returns API models; storage stays behind `store`, loaded on first use.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from functions.identity import passwords
from functions.identity.models import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    AuthResponse,
    InviteUserRequest,
    ProfileUpdate,
    RoleCreate,
    RolePublic,
    SessionPublic,
    SettingsUpdate,
    UserPublic,
    UserSettings,
)
from functions.identity.notifier import notifier
from shared import audit
from shared.audit import DetailValue, Target
from shared.auth.principal import (
    ALL_PERMISSIONS,
    BUILTIN_ROLES,
    DEFAULT_ROLE,
    PERMISSIONS,
    Principal,
    permissions_of,
)
from shared.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from shared.ids import is_id, new_id
from shared.lazy import LazyModule
from shared.request_context import current_origin
from shared.settings import get_settings

if TYPE_CHECKING:
    from functions.identity import store
    from functions.identity.store import ApiKeyRecord, LoginFailureRecord, SessionRecord, UserRecord
else:
    store = LazyModule("functions.identity.store")

BAD_CREDENTIALS = "The email or password is wrong"
USERS_MANAGE = "users.manage"


@dataclass(frozen=True)
class SignedIn:
    body: AuthResponse
    refresh_token: str
    refresh_expires_at: int
    session_id: str


# Accounts and sessions ------------------------------------------------------------------------------------


def register(email: str, password: str, name: str | None) -> SignedIn:
    """Create an account and sign it in. The stage's first account becomes its admin. Recorded as
    `user.registered` alone: the sign-in that comes with it is no second event."""
    return _recorded_sign_in("user.registered", hash_email(email), None, lambda: _register(email, password, name))


def _register(email: str, password: str, name: str | None) -> SignedIn:
    passwords.check_policy(password)
    settings = get_settings()
    password_hash = passwords.hash_password(password, settings.password_hash_cost)
    user_id = new_id()

    def record(roles: list[str]) -> UserRecord:
        return store.UserRecord(
            pk=f"USER#{user_id}", sk="PROFILE", gsi1sk=user_id, user_id=user_id, email=email, name=name,
            roles=roles, status="active", password_hash=password_hash,
        )  # fmt: skip

    user = record(["admin"])
    try:
        store.create_user(user, claim_first_admin=True)
    except store.FirstAdminTakenError:
        user = record([DEFAULT_ROLE])
        store.create_user(user, claim_first_admin=False)
    return _sign_in(user)


def login(email: str, password: str) -> SignedIn:
    """Sign in; a wrong password and an unknown email are indistinguishable, in answer and in time. A failed
    attempt is recorded in the log of the account the email names, if one does (the email hashed, as the
    lockout counts it)."""
    email_hash = hash_email(email)
    user = store.find_user_by_email(email)
    owner_id = user.user_id if user is not None else None
    return _recorded_sign_in("user.login", email_hash, owner_id, lambda: _login(email_hash, user, password))


def _login(email_hash: str, user: UserRecord | None, password: str) -> SignedIn:
    settings = get_settings()
    failures = _failures_below_lockout(email_hash)
    stored_hash = user.password_hash if user is not None and user.password_hash else None
    matches = passwords.verify_password(password, stored_hash or passwords.decoy_hash(settings.password_hash_cost))
    if user is None or stored_hash is None or not matches or user.status != "active":
        _count_failed_sign_in(email_hash, user.user_id if user is not None else None)
        raise Unauthorized(BAD_CREDENTIALS, code="invalid_credentials")
    if failures is not None:
        store.clear_login_failures(email_hash)
    if passwords.needs_rehash(stored_hash, settings.password_hash_cost):
        store.update_user(user, password_hash=passwords.hash_password(password, settings.password_hash_cost))
    return _sign_in(user)


def _recorded_sign_in(action: str, email_hash: str, owner_id: str | None, sign_in: Callable[[], SignedIn]) -> SignedIn:
    """Record a sign-up or sign-in: by the user now signed in, or a failure with no actor (whoever tried is no
    one the stage knows), in the log of `owner_id` when the email names an account."""
    details: dict[str, DetailValue] = {"emailHash": email_hash}
    try:
        signed_in = sign_in()
    except DomainError as error:
        audit.record(
            action, outcome="failure", user_id=owner_id, target=_user_target(owner_id),
            details={**details, "error": error.error_code},
        )  # fmt: skip
        raise
    user = signed_in.body.user
    actor = Principal(
        user_id=user.id, roles=tuple(user.roles), permissions=frozenset(), auth_type="token",
        session_id=signed_in.session_id,
    )  # fmt: skip
    audit.record(action, actor=actor, target=Target("user", user.id), details=details)
    return signed_in


def _user_target(user_id: str | None) -> Target | None:
    return Target("user", user_id) if user_id else None


def _count_failed_sign_in(email_hash: str, user_id: str | None) -> None:
    """Count a wrong password towards the email's lockout; the failure that locks it is recorded `user.locked`."""
    settings = get_settings()
    failures = store.record_login_failure(email_hash, settings.login_lockout_seconds)
    if failures == settings.login_max_failures:
        audit.record(
            "user.locked", user_id=user_id, target=_user_target(user_id),
            details={"emailHash": email_hash, "failures": failures, "lockedSeconds": settings.login_lockout_seconds},
        )  # fmt: skip


def _failures_below_lockout(email_hash: str) -> LoginFailureRecord | None:
    """The email's failed sign-ins in the current window; 429 once they reach the lockout."""
    failures = store.login_failures(email_hash)
    if failures is not None and failures.failures >= get_settings().login_max_failures:
        raise RateLimited(
            "Too many failed sign-ins for this account; try again later",
            retry_after_seconds=int(failures.window_ends - time.time()),
            limit="login_attempts",
        )
    return failures


def refresh(refresh_token: str) -> SignedIn:
    """Spend a refresh token for a new pair. A token spent twice revokes its whole family: one of the two
    holders is not the user."""
    from shared.auth.keys import key_ring
    from shared.auth.tokens import issue_token, verify_token

    settings = get_settings()
    claims = verify_token(refresh_token, key_ring(), settings, token_type="refresh")
    user_id, family_id, jti = str(claims["sub"]), str(claims.get("sid", "")), str(claims["jti"])
    session = store.get_session(user_id, family_id)
    if session is None or session.revoked:
        raise Unauthorized("This session has ended; sign in again", code="session_revoked")
    if session.current_jti != jti:
        raise _reused(user_id, family_id)
    user = _active_user(user_id)
    next_refresh = issue_token(key_ring(), settings, token_type="refresh", subject=user_id, claims={"sid": family_id})
    origin = current_origin()
    rotated = store.rotate_session(
        session, spent_jti=jti, next_jti=next_refresh.jti, expires_at=next_refresh.expires_at,
        user_agent=origin.user_agent, ip=origin.ip,
    )  # fmt: skip
    if not rotated:
        raise _reused(user_id, family_id)
    return _signed_in(user, family_id, next_refresh.token, next_refresh.expires_at)


def _reused(user_id: str, family_id: str) -> Unauthorized:
    """A spent refresh token presented again: the family is closed, and the log of its user says so (a refused
    attempt by someone holding a copy: `failure`, no actor)."""
    store.revoke_session(user_id, family_id)
    refused = Unauthorized(
        "This refresh token was already used; the session is now closed", code="refresh_token_reused"
    )
    audit.record(
        "session.refresh_reused", outcome="failure", user_id=user_id, target=Target("session", family_id),
        details={"error": refused.error_code},
    )  # fmt: skip
    return refused


def logout(principal: Principal, refresh_token: str | None) -> None:
    """End the caller's session: the family of the presented refresh token, or the one the access token is from."""
    family_id = principal.session_id
    if refresh_token:
        from shared.auth.keys import key_ring
        from shared.auth.tokens import verify_token

        try:
            claims = verify_token(refresh_token, key_ring(), get_settings(), token_type="refresh")
        except Unauthorized:
            claims = {}
        if claims.get("sub") == principal.user_id:
            family_id = str(claims.get("sid") or family_id)
    with audit.recorded("user.logout", actor=principal, target=Target("session", family_id) if family_id else None):
        if family_id:
            store.revoke_session(principal.user_id, family_id)


def list_sessions(principal: Principal, limit: int, cursor: str | None) -> tuple[list[SessionPublic], str | None]:
    """The caller's signed-in sessions, newest first; the one their credential is from is `current`."""
    records, next_cursor = store.active_sessions(principal.user_id, limit=limit, cursor=cursor)
    return [_public_session(record, principal.session_id) for record in records], next_cursor


def revoke_session(principal: Principal, session_id: str) -> None:
    """Sign one of the caller's sessions out, as logging out of it would: its refresh token and its access tokens
    are refused from now on. Another user's session, like an unknown one, is not found."""
    with audit.recorded("session.revoked", actor=principal, target=Target("session", session_id)):
        session = store.get_session(principal.user_id, session_id) if is_id(session_id) else None
        if session is None or session.revoked:
            raise NotFound("Session not found", code="session_not_found")
        store.revoke_session(principal.user_id, session_id)


def _public_session(record: SessionRecord, current_session_id: str | None) -> SessionPublic:
    return SessionPublic(
        session_id=record.family_id,
        created_at=record.created_at,
        last_used_at=record.last_used_at or record.created_at,
        user_agent=record.user_agent,
        ip=record.ip,
        current=record.family_id == current_session_id,
    )


def _sign_in(user: UserRecord) -> SignedIn:
    from shared.auth.keys import key_ring
    from shared.auth.tokens import issue_token

    family_id = new_id()
    issued = issue_token(
        key_ring(), get_settings(), token_type="refresh", subject=user.user_id, claims={"sid": family_id}
    )
    origin = current_origin()
    store.start_session(
        user.user_id, family_id, issued.jti, issued.expires_at, user_agent=origin.user_agent, ip=origin.ip
    )
    return _signed_in(user, family_id, issued.token, issued.expires_at)


def _signed_in(user: UserRecord, family_id: str, refresh_token: str, refresh_expires_at: int) -> SignedIn:
    from shared.auth.keys import key_ring
    from shared.auth.tokens import issue_token

    settings = get_settings()
    permissions = sorted(_permissions_for(list(user.roles)))
    access = issue_token(
        key_ring(), settings, token_type="access", subject=user.user_id,
        claims={"sid": family_id, "roles": list(user.roles), "perms": permissions},
    )  # fmt: skip
    body = AuthResponse(
        user=public_user(user),
        access_token=access.token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
    )
    return SignedIn(body, refresh_token, refresh_expires_at, family_id)


# Password reset and invitations ---------------------------------------------------------------------------


def forgot_password(email: str) -> None:
    """Send a one-time reset token if the account exists; the answer is the same either way."""
    user = store.find_user_by_email(email)
    details: dict[str, DetailValue] = {"emailHash": hash_email(email)}
    if user is None:
        # The answer says nothing; the stage's log does.
        audit.record("password.reset_requested", outcome="failure", details={**details, "error": "user_not_found"})
        return
    _send_reset(user, invitation=False)
    audit.record("password.reset_requested", user_id=user.user_id, target=_user_target(user.user_id), details=details)


def reset_password(token: str, password: str) -> None:
    """Set a new password with a one-time token; every existing session of the account ends."""
    with audit.recorded("password.reset") as entry:
        passwords.check_policy(password)
        user_id = store.spend_reset_token(_token_hash(token))
        if user_id is None:
            raise BadRequest("The reset link is invalid or has expired", code="invalid_reset_token")
        entry.user_id, entry.target = user_id, Target("user", user_id)
        _reset_password(user_id, password)


def _reset_password(user_id: str, password: str) -> None:
    user = store.get_user(user_id)
    cost = get_settings().password_hash_cost
    # Setting a password activates an invited account, never a disabled one.
    if user.status == "deleting":
        raise BadRequest("The reset link is invalid or has expired", code="invalid_reset_token")
    status = "disabled" if user.status == "disabled" else "active"
    store.update_user(user, password_hash=passwords.hash_password(password, cost), status=status)
    store.revoke_all_sessions(user_id)
    store.clear_login_failures(hash_email(user.email))


def _send_reset(user: UserRecord, *, invitation: bool) -> None:
    token = secrets.token_urlsafe(32)
    expires_at = int(time.time()) + get_settings().password_reset_ttl_seconds
    store.save_reset_token(_token_hash(token), user.user_id, expires_at)
    notifier().send_password_reset(user.email, token, invitation=invitation)


# Profile and settings -------------------------------------------------------------------------------------


def profile(user_id: str) -> UserPublic:
    return public_user(_active_user(user_id))


def update_profile(user_id: str, update: ProfileUpdate) -> UserPublic:
    changes = update.model_dump(exclude_unset=True)
    user = _active_user(user_id)
    if changes:
        store.update_user(user, **changes)
    return public_user(store.get_user(user_id))


def user_settings(user_id: str) -> UserSettings:
    return settings_of(_active_user(user_id))


def update_settings(user_id: str, update: SettingsUpdate) -> UserSettings:
    user = _active_user(user_id)
    merged = settings_of(user).model_dump() | update.model_dump(exclude_unset=True)
    if merged.get("enabled_mcp_servers") is None:
        merged["enabled_mcp_servers"] = []
    if merged.get("memory_enabled") is None:
        merged["memory_enabled"] = True
    settings = UserSettings.model_validate(merged)
    store.update_user(user, settings=settings.model_dump(mode="json"))
    return settings


def settings_of(user: UserRecord) -> UserSettings:
    stored = user.settings if isinstance(user.settings, dict) else json.loads(user.settings or "{}")
    return UserSettings.model_validate(stored)


# API keys -------------------------------------------------------------------------------------------------


def create_api_key(principal: Principal, request: ApiKeyCreate) -> ApiKeyCreated:
    """A new key, shown once. It can hold only permissions its owner holds, and only a signed-in user (not
    another key) can mint one, so a leaked key cannot outlive its own revocation."""
    with audit.recorded("apikey.created", actor=principal, details={"name": request.name}) as entry:
        created = _create_api_key(principal, request)
        entry.target = Target("apikey", created.id)
        entry.details["permissions"] = " ".join(created.permissions)
    return created


def _create_api_key(principal: Principal, request: ApiKeyCreate) -> ApiKeyCreated:
    from shared.auth.api_keys import generate_api_key, hash_api_key

    if principal.auth_type != "token":
        raise Forbidden("API keys are created by a signed-in user, not by another key", code="api_key_not_allowed")
    principal.require("apikeys.manage")
    requested = sorted(set(request.permissions))
    unknown = [p for p in requested if p != ALL_PERMISSIONS and p not in PERMISSIONS]
    if unknown:
        raise ValidationFailed(f"Unknown permissions: {', '.join(unknown)}", code="unknown_permission")
    beyond = [p for p in requested if p != ALL_PERMISSIONS and not principal.can(p)]
    if beyond:
        raise Forbidden(f"You cannot grant what you do not hold: {', '.join(beyond)}", code="permission_denied")
    raw_key = generate_api_key()
    expires_at = int(time.time()) + request.expires_in_days * 86400 if request.expires_in_days else None
    record = store.create_api_key(
        user_id=principal.user_id, key_id=new_id(), key_hash=hash_api_key(raw_key), name=request.name,
        prefix=raw_key[:15], permissions=requested, expires_at=expires_at,
    )  # fmt: skip
    return ApiKeyCreated(**_public_key(record).model_dump(), key=raw_key)


def list_api_keys(user_id: str, limit: int, cursor: str | None) -> tuple[list[ApiKeyPublic], str | None]:
    records, next_cursor = store.list_api_keys(user_id, limit=limit, cursor=cursor)
    return [_public_key(record) for record in records], next_cursor


def revoke_api_key(principal: Principal, key_id: str) -> None:
    with audit.recorded("apikey.revoked", actor=principal, target=Target("apikey", key_id)):
        store.delete_api_key(principal.user_id, key_id)


def _public_key(record: ApiKeyRecord) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=record.key_id,
        name=record.name,
        prefix=record.prefix,
        permissions=list(record.permissions),
        created_at=record.created_at,
        expires_at=int(record.expires_at) if record.expires_at is not None else None,
    )


# Users and roles (admin) ----------------------------------------------------------------------------------


def list_users(limit: int, cursor: str | None) -> tuple[list[UserPublic], str | None]:
    records, next_cursor = store.list_users(limit=limit, cursor=cursor)
    return [public_user(record) for record in records], next_cursor


def invite_user(admin: Principal, request: InviteUserRequest) -> UserPublic:
    """Create an account with no password yet; the invitation carries a one-time token to set one."""
    roles = " ".join(sorted(set(request.roles)))
    with audit.recorded("user.invited", actor=admin, details={"roles": roles}) as entry:
        admin.require(USERS_MANAGE)
        invited = _invite_user(request)
        entry.user_id, entry.target = invited.id, Target("user", invited.id)
    return invited


def _invite_user(request: InviteUserRequest) -> UserPublic:
    _require_known_roles(request.roles)
    user_id = new_id()
    user = store.UserRecord(
        pk=f"USER#{user_id}", sk="PROFILE", gsi1sk=user_id, user_id=user_id, email=request.email,
        name=request.name, roles=sorted(set(request.roles)), status="invited",
    )  # fmt: skip
    store.create_user(user, claim_first_admin=False)
    _send_reset(user, invitation=True)
    return public_user(user)


def set_roles(admin: Principal, user_id: str, roles: list[str]) -> UserPublic:
    """Replace a user's roles. Admins cannot drop their own admin role, so a stage never locks itself out."""
    details: dict[str, DetailValue] = {"roles": " ".join(sorted(set(roles)))}
    with audit.recorded(
        "user.roles_changed", actor=admin, user_id=user_id, target=Target("user", user_id), details=details
    ):
        admin.require(USERS_MANAGE)
        return _set_roles(admin, user_id, roles)


def _set_roles(admin: Principal, user_id: str, roles: list[str]) -> UserPublic:
    _require_known_roles(roles)
    if user_id == admin.user_id and "admin" in admin.roles and "admin" not in roles:
        raise Conflict("You cannot remove your own admin role", code="last_admin")
    user = store.get_user(user_id)
    new_roles = sorted(set(roles))
    if new_roles != sorted(user.roles):
        store.update_user(user, roles=new_roles)
        # Their access tokens carry the old roles: refused from now on, a refresh gets the new ones.
        store.record_revocation("user", user_id)
    return public_user(store.get_user(user_id))


def set_status(admin: Principal, user_id: str, status: Literal["active", "disabled"]) -> UserPublic:
    """Disable a user (every session, token and API key of theirs refused at once) or let them back in.
    Admins cannot disable themselves, so a stage never locks itself out."""
    target = Target("user", user_id)
    with audit.recorded("user.status_changed", actor=admin, user_id=user_id, target=target, details={"status": status}):
        admin.require(USERS_MANAGE)
        return _set_status(admin, user_id, status)


def _set_status(admin: Principal, user_id: str, status: Literal["active", "disabled"]) -> UserPublic:
    if user_id == admin.user_id and status == "disabled":
        raise Conflict("You cannot disable your own account", code="last_admin")
    user = store.get_user(user_id)
    if user.status == "deleting":
        raise Conflict("This account is being deleted", code="account_deleting")
    if status == "disabled":
        if user.status != "disabled":
            disable_user(user)
    elif user.status == "disabled":
        # An invited user who never set a password is invited again, not active.
        store.update_user(user, status="active" if user.password_hash else "invited")
    return public_user(store.get_user(user_id))


def disable_user(user: UserRecord) -> None:
    """Refuse every credential of the user from now on: sign-in, refresh, access tokens and API keys."""
    _refuse_every_credential(user, status="disabled")


def _refuse_every_credential(user: UserRecord, *, status: Literal["disabled", "deleting"]) -> None:
    store.update_user(user, status=status)
    store.record_revocation("user", user.user_id)
    store.revoke_all_sessions(user.user_id)


# Account deletion -----------------------------------------------------------------------------------------


def delete_account(principal: Principal, password: str | None) -> str:
    """Start deleting the caller's account and all their data; returns the deletion job's id.

    A signed-in user confirms with their password (wrong ones count towards the sign-in lockout, so this is no
    way around it); an API key needs `users.delete_self` instead. Before the job starts, every credential of
    the user is refused: sign-in, refresh, access tokens and API keys.
    """
    target = Target("user", principal.user_id)
    with audit.recorded("account.deletion_requested", actor=principal, target=target) as entry:
        user = _active_user(principal.user_id)
        if principal.auth_type == "api_key":
            principal.require("users.delete_self")
        else:
            _check_password(user, password)
        _refuse_every_credential(user, status="deleting")
        # The jobs context starts the deletion workflow; loaded here only, the rare path that needs it.
        jobs = importlib.import_module("functions.jobs.service")
        job_id: str = jobs.start_deletion(user.user_id)
        entry.details["jobId"] = job_id
    return job_id


def _check_password(user: UserRecord, password: str | None) -> None:
    settings = get_settings()
    email_hash = hash_email(user.email)
    _failures_below_lockout(email_hash)
    stored_hash = user.password_hash or passwords.decoy_hash(settings.password_hash_cost)
    if not password or not passwords.verify_password(password, stored_hash) or not user.password_hash:
        _count_failed_sign_in(email_hash, user.user_id)
        raise Unauthorized("The password is wrong", code="invalid_credentials")


def list_roles() -> list[RolePublic]:
    builtin = [
        RolePublic(name=name, description=None, permissions=sorted(granted), builtin=True)
        for name, granted in BUILTIN_ROLES.items()
    ]
    custom = [
        RolePublic(name=r.name, description=r.description, permissions=sorted(r.permissions), builtin=False)
        for r in store.custom_roles()
    ]
    return builtin + custom


def create_role(admin: Principal, request: RoleCreate) -> RolePublic:
    details: dict[str, DetailValue] = {"permissions": " ".join(sorted(set(request.permissions)))}
    with audit.recorded("role.created", actor=admin, target=Target("role", request.name), details=details):
        admin.require(USERS_MANAGE)
        return _create_role(request)


def _create_role(request: RoleCreate) -> RolePublic:
    if request.name in BUILTIN_ROLES:
        raise Conflict(f"'{request.name}' is a built-in role", code="role_exists")
    unknown = [p for p in request.permissions if p != ALL_PERMISSIONS and p not in PERMISSIONS]
    if unknown:
        raise ValidationFailed(f"Unknown permissions: {', '.join(unknown)}", code="unknown_permission")
    record = store.create_role(request.name, request.description, sorted(set(request.permissions)))
    return RolePublic(
        name=record.name, description=record.description, permissions=list(record.permissions), builtin=False
    )


def delete_role(admin: Principal, name: str) -> None:
    """Remove a custom role; users still naming it simply stop getting its permissions."""
    with audit.recorded("role.deleted", actor=admin, target=Target("role", name)):
        admin.require(USERS_MANAGE)
        if name in BUILTIN_ROLES:
            raise Conflict(f"'{name}' is a built-in role and cannot be deleted", code="builtin_role")
        store.delete_role(name)
        # Credentials verified while the role still granted something are refused; fresh ones lack it.
        store.record_revocation("role", name)


def _require_known_roles(roles: list[str]) -> None:
    custom = {record.name for record in store.custom_roles()}
    unknown = sorted(set(roles) - set(BUILTIN_ROLES) - custom)
    if unknown:
        raise ValidationFailed(f"Unknown roles: {', '.join(unknown)}", code="unknown_role")


def _permissions_for(roles: list[str]) -> frozenset[str]:
    custom = {}
    for role in roles:
        if role not in BUILTIN_ROLES and (record := store.get_role(role)) is not None:
            custom[role] = list(record.permissions)
    return permissions_of(roles, custom)


# Shared helpers -------------------------------------------------------------------------------------------


def public_user(user: UserRecord) -> UserPublic:
    return UserPublic(
        id=user.user_id,
        email=user.email,
        name=user.name,
        avatar_url=user.avatar_url,
        timezone=user.timezone,
        roles=list(user.roles),
        status=_public_status(user.status),
        created_at=user.created_at,
    )


def _public_status(status: str) -> Literal["active", "invited", "disabled", "deleting"]:
    if status == "invited":
        return "invited"
    if status == "disabled":
        return "disabled"
    return "deleting" if status == "deleting" else "active"


def _active_user(user_id: str) -> UserRecord:
    try:
        user = store.get_user(user_id)
    except NotFound:
        raise Unauthorized("This account no longer exists", code="account_gone") from None
    if user.status != "active":
        raise Unauthorized("This account cannot sign in", code="account_inactive")
    return user


def principal_for_user(user_id: str) -> Principal:
    """The principal the stage acts as on a user's behalf when no credential of theirs is at hand (a messaging
    channel's inbound message, answered in their conversations, within their limits): their roles and permissions
    as stored now. 401 `account_gone` or `account_inactive` for a user who may no longer act."""
    user = _active_user(user_id)
    roles = list(user.roles)
    return Principal(
        user_id=user.user_id,
        roles=tuple(roles),
        permissions=_permissions_for(roles),
        auth_type="token",
        verified_at_ms=time.time_ns() // 1_000_000,
    )


def hash_email(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_id_for_email(email: str) -> str | None:
    """The id of the active, invited or disabled account with this email, for contexts that name users by email
    (sharing a project); an account being deleted is no one to share with."""
    user = store.find_user_by_email(email.strip().lower())
    return user.user_id if user is not None and user.status != "deleting" else None
