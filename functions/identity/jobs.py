"""Identity's part in the jobs workflows (functions.jobs.ports): the user's profile and settings exported, and
every identity item of theirs deleted, the user item last, so the same email can register afresh."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage, ExportPage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.identity import service, store
else:
    service = LazyModule("functions.identity.service")
    store = LazyModule("functions.identity.store")

PROFILE_DOCUMENT = "profile.json"
SETTINGS_DOCUMENT = "settings.json"


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    """The profile as GET /users/profile answers it and the settings as GET /users/settings does: one page."""
    user = store.find_user(user_id)
    if user is None:
        return ExportPage()
    return ExportPage(
        documents={
            PROFILE_DOCUMENT: service.public_user(user).model_dump(mode="json", by_alias=True),
            SETTINGS_DOCUMENT: service.settings_of(user).model_dump(mode="json", by_alias=True),
        }
    )


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """Delete up to `limit` of the user's credentials (email claim, failed sign-ins, sessions, API keys, reset
    tokens); once none is left, the user item itself. What is deleted is gone, so each page starts afresh."""
    user = store.find_user(user_id)
    if user is None:
        return DeletePage(deleted=0)
    keys, more = store.credential_keys(user, limit=max(1, limit - 1))
    # Failed sign-ins for the email go too, unlooked at and uncounted: deleting a key that holds nothing is harmless.
    store.delete_keys([*keys, store.login_failures_key(service.hash_email(user.email))])
    if more:
        return DeletePage(deleted=len(keys), cursor="more")
    store.delete_user_item(user_id)
    return DeletePage(deleted=len(keys) + 1)
