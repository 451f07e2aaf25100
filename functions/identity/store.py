"""Identity's storage: pynamodb records in the identity table, and the data access the service needs.

Callers get domain records back and domain errors out; pynamodb and botocore stay behind this module, which
the service loads lazily so a handler's cold start does not pay for them.

Items (pk / sk):
  USER#<id> / PROFILE            a user; gsi1 USERS / <id> lists users in sign-up order
  EMAIL#<email> / EMAIL          reserves an email for one user
  USER#<id> / SESSION#<family>   a refresh-token family (a signed-in session): the one refresh token still
                                 spendable, when it began and was last refreshed, from which address and agent
  APIKEY#<sha256> / APIKEY       an API key by its hash; gsi1 USER#<id>#APIKEYS / <key id> lists a user's keys
  ROLE#<name> / ROLE             a custom role; gsi1 ROLES / <name>
  LOGINFAIL#<sha256> / LOGINFAIL failed logins for an email in the current window
  RESET#<sha256> / RESET         a one-time password reset (or invitation) token; gsi1 USER#<id>#RESETS / <sha256>
                                 finds a user's tokens when their account is deleted
  STAGE / FIRST_ADMIN            claimed once, by the stage's first user, who becomes its admin
  REVOCATIONS / <ms>#<kind>#<id> a revoking act every function reads at once (shared.auth.revocations)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from shared.auth.api_keys import api_key_item_key, role_item_key, user_item_key
from shared.auth.revocations import (
    REVOCATIONS_PARTITION,
    RevocationKind,
    revocation_horizon_seconds,
    revocation_sort_key,
)
from shared.errors import Conflict, NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.storage import (
    condition_failed,
    secondary_index,
    string_list,
    table_meta,
    transaction_cancellations,
    update_existing,
)
from shared.tables import IDENTITY

USERS_PARTITION = "USERS"
ROLES_PARTITION = "ROLES"


def _now() -> datetime:
    return datetime.now(UTC)


_Meta = table_meta(IDENTITY)


class UserRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute(default=USERS_PARTITION)
    gsi1sk = UnicodeAttribute()
    by_gsi1 = secondary_index(IDENTITY.index("gsi1"))

    user_id = UnicodeAttribute(attr_name="userId")
    email = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    avatar_url = UnicodeAttribute(attr_name="avatarUrl", null=True)
    timezone = UnicodeAttribute(null=True)
    roles = string_list()
    # active: may sign in; invited: has not set a password yet.
    status = UnicodeAttribute(default="active")
    password_hash = UnicodeAttribute(attr_name="passwordHash", null=True)
    settings = JSONAttribute(null=True)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=_now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=_now)


class EmailRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="EMAIL")
    user_id = UnicodeAttribute(attr_name="userId")


class SessionRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    current_jti = UnicodeAttribute(attr_name="currentJti")
    revoked = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=_now)
    # Sessions from before these were kept read as last used when they began, from nowhere known.
    last_used_at = UTCDateTimeAttribute(attr_name="lastUsedAt", null=True)
    user_agent = UnicodeAttribute(attr_name="userAgent", null=True)
    ip = UnicodeAttribute(null=True)
    ttl = TTLAttribute()

    @property
    def family_id(self) -> str:
        return self.sk.removeprefix("SESSION#")


class ApiKeyRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="APIKEY")
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    by_gsi1 = secondary_index(IDENTITY.index("gsi1"))

    user_id = UnicodeAttribute(attr_name="userId")
    key_id = UnicodeAttribute(attr_name="keyId")
    name = UnicodeAttribute()
    prefix = UnicodeAttribute()
    permissions = string_list()
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=_now)
    expires_at = NumberAttribute(attr_name="expiresAt", null=True)


class RoleRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="ROLE")
    gsi1pk = UnicodeAttribute(default=ROLES_PARTITION)
    gsi1sk = UnicodeAttribute()
    by_gsi1 = secondary_index(IDENTITY.index("gsi1"))

    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    permissions = string_list()


class LoginFailureRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="LOGINFAIL")
    failures = NumberAttribute(default=0)
    window_ends = NumberAttribute(attr_name="windowEnds")
    ttl = TTLAttribute()


class ResetTokenRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="RESET")
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    by_gsi1 = secondary_index(IDENTITY.index("gsi1"))
    user_id = UnicodeAttribute(attr_name="userId")
    expires_at = NumberAttribute(attr_name="expiresAt")
    ttl = TTLAttribute()


class RevocationRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True, default=REVOCATIONS_PARTITION)
    sk = UnicodeAttribute(range_key=True)
    ttl = TTLAttribute()


class StageRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    user_id = UnicodeAttribute(attr_name="userId")


# Users --------------------------------------------------------------------------------------------------


def create_user(user: UserRecord, *, claim_first_admin: bool) -> None:
    """Store a new user and reserve their email in one transaction.

    With `claim_first_admin`, the transaction also claims the stage's first-admin marker; `FirstAdminTaken`
    means another user holds it (retry as a member). `Conflict` means the email is taken.
    """
    email = EmailRecord(pk=email_key(user.email), user_id=user.user_id)
    marker = StageRecord(pk="STAGE", sk="FIRST_ADMIN", user_id=user.user_id)
    try:
        with TransactWrite(connection=UserRecord._get_connection().connection) as transaction:
            transaction.save(email, condition=EmailRecord.pk.does_not_exist())
            transaction.save(user, condition=UserRecord.pk.does_not_exist())
            if claim_first_admin:
                transaction.save(marker, condition=StageRecord.pk.does_not_exist())
    except TransactWriteError as error:
        reasons = transaction_cancellations(error)
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise Conflict("An account with this email already exists", code="email_taken") from None
        if claim_first_admin and len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
            raise FirstAdminTakenError from None
        raise


class FirstAdminTakenError(Exception):
    """The stage already has its first admin."""


def email_key(email: str) -> str:
    return f"EMAIL#{email}"


def get_user(user_id: str) -> UserRecord:
    pk, sk = user_item_key(user_id)
    try:
        return UserRecord.get(pk, sk)
    except DoesNotExist:
        raise NotFound("User not found", code="user_not_found") from None


def find_user_by_email(email: str) -> UserRecord | None:
    try:
        reservation = EmailRecord.get(email_key(email), "EMAIL")
    except DoesNotExist:
        return None
    try:
        return get_user(reservation.user_id)
    except NotFound:
        return None


def update_user(user: UserRecord, **changes: Any) -> UserRecord:
    """Apply `changes` (attribute name to value; None removes) to a user that must still exist."""
    update_existing(user, changes, updated_at=_now())
    return user


def list_users(*, limit: int, cursor: str | None) -> tuple[list[UserRecord], str | None]:
    start = decode_cursor(
        cursor, partition={"gsi1pk": USERS_PARTITION}, sort_prefixes={"gsi1sk": "", "pk": "USER#", "sk": "PROFILE"}
    )
    results = UserRecord.by_gsi1.query(USERS_PARTITION, limit=limit, last_evaluated_key=start, scan_index_forward=False)
    users = list(results)
    return users, encode_cursor(results.last_evaluated_key)


# Sessions (refresh-token families) --------------------------------------------------------------------------


def session_key(user_id: str, family_id: str) -> tuple[str, str]:
    return f"USER#{user_id}", f"SESSION#{family_id}"


def start_session(
    user_id: str, family_id: str, jti: str, expires_at: int, *, user_agent: str | None, ip: str | None
) -> None:
    pk, sk = session_key(user_id, family_id)
    moment = _now()
    SessionRecord(
        pk=pk, sk=sk, current_jti=jti, created_at=moment, last_used_at=moment, user_agent=_clipped(user_agent),
        ip=ip, ttl=datetime.fromtimestamp(expires_at, UTC),
    ).save(condition=SessionRecord.pk.does_not_exist())  # fmt: skip


def _clipped(user_agent: str | None) -> str | None:
    return user_agent[:_MAX_USER_AGENT] if user_agent else None


# A user agent is the client's to say; what a session keeps of it stays small.
_MAX_USER_AGENT = 512


def get_session(user_id: str, family_id: str) -> SessionRecord | None:
    try:
        return SessionRecord.get(*session_key(user_id, family_id))
    except DoesNotExist:
        return None


def rotate_session(
    session: SessionRecord,
    *,
    spent_jti: str,
    next_jti: str,
    expires_at: int,
    user_agent: str | None,
    ip: str | None,
) -> bool:
    """Make `next_jti` the family's spendable token if `spent_jti` still is, the session last used now from where
    the refresh came; False if someone spent it first."""
    seen: list[Any] = [SessionRecord.last_used_at.set(_now())]
    seen += [SessionRecord.user_agent.set(agent)] if (agent := _clipped(user_agent)) else []
    seen += [SessionRecord.ip.set(ip)] if ip else []
    try:
        session.update(
            actions=[
                SessionRecord.current_jti.set(next_jti),
                SessionRecord.ttl.set(datetime.fromtimestamp(expires_at, UTC)),
                *seen,
            ],
            condition=(SessionRecord.current_jti == spent_jti) & (SessionRecord.revoked == False),  # noqa: E712
        )
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def revoke_session(user_id: str, family_id: str) -> None:
    """End a refresh-token family, and refuse its access tokens everywhere at once."""
    record_revocation("session", family_id)
    session = SessionRecord(*session_key(user_id, family_id))
    try:
        session.update(actions=[SessionRecord.revoked.set(True)], condition=SessionRecord.pk.exists())
    except UpdateError as error:
        if not condition_failed(error):
            raise


def active_sessions(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[SessionRecord], str | None]:
    """The user's sessions still signed in, newest first (a family's id is a ULID: its sort key is its start)."""
    partition = f"USER#{user_id}"
    start = decode_cursor(cursor, partition={"pk": partition}, sort_prefixes={"sk": "SESSION#"})
    results = SessionRecord.query(
        partition, SessionRecord.sk.startswith("SESSION#"),
        # Expired families linger until TTL removes them: not signed in any more.
        filter_condition=(SessionRecord.revoked == False) & (SessionRecord.ttl > _now()),  # noqa: E712
        limit=limit, last_evaluated_key=start, scan_index_forward=False,
    )  # fmt: skip
    sessions = list(results)
    return sessions, encode_cursor(results.last_evaluated_key)


def revoke_all_sessions(user_id: str) -> int:
    revoked = 0
    for session in SessionRecord.query(f"USER#{user_id}", SessionRecord.sk.startswith("SESSION#")):
        if not session.revoked:
            revoke_session(user_id, session.sk.removeprefix("SESSION#"))
            revoked += 1
    return revoked


# API keys ---------------------------------------------------------------------------------------------------


def api_keys_partition(user_id: str) -> str:
    return f"USER#{user_id}#APIKEYS"


def create_api_key(
    *,
    user_id: str,
    key_id: str,
    key_hash: str,
    name: str,
    prefix: str,
    permissions: list[str],
    expires_at: int | None,
) -> ApiKeyRecord:
    pk, sk = api_key_item_key(key_hash)
    record = ApiKeyRecord(
        pk=pk,
        sk=sk,
        gsi1pk=api_keys_partition(user_id),
        gsi1sk=key_id,
        user_id=user_id,
        key_id=key_id,
        name=name,
        prefix=prefix,
        permissions=permissions,
        expires_at=expires_at,
    )
    record.save(condition=ApiKeyRecord.pk.does_not_exist())
    return record


def list_api_keys(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[ApiKeyRecord], str | None]:
    partition = api_keys_partition(user_id)
    start = decode_cursor(
        cursor, partition={"gsi1pk": partition}, sort_prefixes={"gsi1sk": "", "pk": "APIKEY#", "sk": "APIKEY"}
    )
    results = ApiKeyRecord.by_gsi1.query(partition, limit=limit, last_evaluated_key=start, scan_index_forward=False)
    keys = list(results)
    return keys, encode_cursor(results.last_evaluated_key)


def delete_api_key(user_id: str, key_id: str) -> None:
    """Revoke one of the user's keys, refused everywhere at once; another user's key id is simply not found."""
    matches = list(ApiKeyRecord.by_gsi1.query(api_keys_partition(user_id), ApiKeyRecord.gsi1sk == key_id))
    if not matches:
        raise NotFound("API key not found", code="api_key_not_found")
    matches[0].delete()
    record_revocation("api_key", key_id)


# Roles ------------------------------------------------------------------------------------------------------


def create_role(name: str, description: str | None, permissions: list[str]) -> RoleRecord:
    pk, sk = role_item_key(name)
    record = RoleRecord(pk=pk, sk=sk, gsi1sk=name, name=name, description=description, permissions=permissions)
    try:
        record.save(condition=RoleRecord.pk.does_not_exist())
    except PutError as error:
        if condition_failed(error):
            raise Conflict(f"The role '{name}' already exists", code="role_exists") from None
        raise
    return record


def custom_roles() -> list[RoleRecord]:
    return list(RoleRecord.by_gsi1.query(ROLES_PARTITION))


def get_role(name: str) -> RoleRecord | None:
    try:
        return RoleRecord.get(*role_item_key(name))
    except DoesNotExist:
        return None


def delete_role(name: str) -> None:
    try:
        RoleRecord(*role_item_key(name)).delete(condition=RoleRecord.pk.exists())
    except DeleteError as error:
        if condition_failed(error):
            raise NotFound(f"The role '{name}' does not exist", code="role_not_found") from None
        raise


# Revocations ------------------------------------------------------------------------------------------------


def record_revocation(kind: RevocationKind, subject: str) -> int:
    """Record a revoking act for every function to read (shared.auth.revocations); returns its time (epoch ms).

    Kept as long as a credential it refuses could still be presented, then removed by TTL.
    """
    from shared.settings import get_settings

    at_ms = int(time.time() * 1000)
    horizon = revocation_horizon_seconds(get_settings().access_token_ttl_seconds)
    RevocationRecord(
        sk=revocation_sort_key(at_ms, kind, subject), ttl=datetime.fromtimestamp(at_ms / 1000 + horizon, UTC)
    ).save()
    return at_ms


# Failed logins ----------------------------------------------------------------------------------------------


def login_failures(email_hash: str) -> LoginFailureRecord | None:
    try:
        record = LoginFailureRecord.get(f"LOGINFAIL#{email_hash}", "LOGINFAIL")
    except DoesNotExist:
        return None
    return record if record.window_ends > time.time() else None


def record_login_failure(email_hash: str, window_seconds: int) -> int:
    """Count one failed login in the email's current window (a new window when none is open); returns the count."""
    now = int(time.time())
    record = LoginFailureRecord(f"LOGINFAIL#{email_hash}", "LOGINFAIL")
    try:
        record.update(actions=[LoginFailureRecord.failures.add(1)], condition=LoginFailureRecord.window_ends > now)
    except UpdateError as error:
        if not condition_failed(error):
            raise
        record.update(
            actions=[
                LoginFailureRecord.failures.set(1),
                LoginFailureRecord.window_ends.set(now + window_seconds),
                LoginFailureRecord.ttl.set(datetime.fromtimestamp(now + window_seconds, UTC)),
            ]
        )
    return int(record.failures)


def clear_login_failures(email_hash: str) -> None:
    LoginFailureRecord(f"LOGINFAIL#{email_hash}", "LOGINFAIL").delete()


# Password reset tokens --------------------------------------------------------------------------------------


def reset_tokens_partition(user_id: str) -> str:
    return f"USER#{user_id}#RESETS"


def save_reset_token(token_hash: str, user_id: str, expires_at: int) -> None:
    ResetTokenRecord(
        pk=f"RESET#{token_hash}",
        gsi1pk=reset_tokens_partition(user_id),
        gsi1sk=token_hash,
        user_id=user_id,
        expires_at=expires_at,
        ttl=datetime.fromtimestamp(expires_at, UTC),
    ).save()


def spend_reset_token(token_hash: str) -> str | None:
    """The user a reset token is for, deleting it so it works once; None if unknown, spent or expired."""
    try:
        record = ResetTokenRecord.get(f"RESET#{token_hash}", "RESET")
    except DoesNotExist:
        return None
    try:
        # Of two requests spending the same token, only the one whose delete finds the item wins.
        record.delete(condition=ResetTokenRecord.pk.exists())
    except DeleteError as error:
        if condition_failed(error):
            return None
        raise
    return record.user_id if record.expires_at > time.time() else None


# Account deletion -------------------------------------------------------------------------------------------


def find_user(user_id: str) -> UserRecord | None:
    try:
        return get_user(user_id)
    except NotFound:
        return None


def credential_keys(user: UserRecord, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` keys of what the user holds besides their user item: the email claimed (when it is still
    theirs), sessions, API keys and reset tokens; and whether more are left. Revocations are not theirs to take:
    they refuse old credentials until they expire."""
    keys: list[dict[str, Any]] = []
    try:
        claim = EmailRecord.get(email_key(user.email), "EMAIL")
    except DoesNotExist:
        pass
    else:
        if claim.user_id == user.user_id:
            keys.append(_key(claim.pk, claim.sk))
    queries: list[Any] = [
        lambda room: SessionRecord.query(
            f"USER#{user.user_id}", SessionRecord.sk.startswith("SESSION#"), limit=room,
            attributes_to_get=["pk", "sk"],
        ),
        lambda room: ApiKeyRecord.by_gsi1.query(api_keys_partition(user.user_id), limit=room),
        lambda room: ResetTokenRecord.by_gsi1.query(reset_tokens_partition(user.user_id), limit=room),
    ]  # fmt: skip
    for query in queries:
        room = limit - len(keys)
        if room <= 0:
            return keys, True
        page = next(query(room).page_iter)
        keys += [_key(item["pk"]["S"], item["sk"]["S"]) for item in page.get("Items", [])]
        if page.get("LastEvaluatedKey"):
            return keys, True
    return keys, False


def delete_keys(keys: list[dict[str, Any]]) -> None:
    from shared.aws import delete_items

    delete_items(IDENTITY.name_from_env(), keys)


def login_failures_key(email_hash: str) -> dict[str, Any]:
    return _key(f"LOGINFAIL#{email_hash}", "LOGINFAIL")


def delete_user_item(user_id: str) -> None:
    pk, sk = user_item_key(user_id)
    delete_keys([_key(pk, sk)])


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}
