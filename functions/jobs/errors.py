"""The one error a job's task raises for bad input: the workflow does not retry it, and its message reaches the
user as is (every other failure is retried, then shown as a generic message)."""

from __future__ import annotations

import json
import re

from shared.errors import DomainError

# Lambda reports a task's error as `{"Error": <errorType>, "Cause": <JSON with errorMessage>}`: the code travels
# in the message, ahead of it, so the `fail` step can show both.
_CODED = re.compile(r"^([a-z][a-z0-9_]{0,63}): (.+)$", re.DOTALL)


class JobInputError(Exception):
    """The input of a job (an uploaded file) is not what it claims: `code` for programs, `message` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_cause(cls, cause: str) -> JobInputError | None:
        """The error a Step Functions Catch's `Cause` carries (Lambda's JSON, or the bare message), if it is one."""
        message = cause
        try:
            parsed = json.loads(cause)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("errorMessage"), str):
            message = parsed["errorMessage"]
        matched = _CODED.match(message.strip())
        return cls(matched.group(1), matched.group(2)) if matched else None


class JobNotStarted(DomainError):
    """The workflow of a job could not be started: the job is recorded failed, and asking again may work."""

    status, code = 503, "job_not_started"
