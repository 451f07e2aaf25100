"""How identity reaches a user outside the API (password resets, invitations): a pluggable notifier.

Local mode and dev stages log the link so a developer can follow it; deployed stages log only that a message
was due until an email notifier is configured, so no reset token ever lands in production logs.
"""

from __future__ import annotations

from typing import Protocol

from shared.observability import logger
from shared.settings import get_settings


class Notifier(Protocol):
    def send_password_reset(self, email: str, token: str, *, invitation: bool) -> None: ...


class LogNotifier:
    def send_password_reset(self, email: str, token: str, *, invitation: bool) -> None:
        settings = get_settings()
        kind = "invitation" if invitation else "password reset"
        if settings.local_mode or settings.is_dev_stage:
            logger.warning(f"{kind} for {email}: reset token {token}", extra={"resetToken": token})
        else:
            logger.warning(f"{kind} requested, but no notifier is configured to deliver it")


_notifier: Notifier = LogNotifier()


def notifier() -> Notifier:
    return _notifier


def use_notifier(replacement: Notifier) -> Notifier:
    """Install another notifier (an email sender, or a test's recorder); returns the previous one."""
    global _notifier
    previous, _notifier = _notifier, replacement
    return previous
