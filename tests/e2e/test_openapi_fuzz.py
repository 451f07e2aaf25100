"""The fuzz tier: schemathesis generates requests for every operation of the merged OpenAPI document and sends
them to a running local stack, signed in as a registered user.

It fails on any 5xx, any response whose status the document does not list for its operation, any body or
header that does not match its schema, and the other checks below. Bounded: a few generated cases per operation
beyond the boundary cases, one fixed seed, no example database, so two runs send the same kinds of request.

The stack is a private one: its first registered account is the stage's admin, so the admin routes are fuzzed
past their permission check, and the generated data lands nowhere another test reads.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from infra.catalog import CHAT_FUNCTION, all_routes
from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.fuzz

SEED = 1
EXAMPLES_PER_OPERATION = 5
RUN_TIMEOUT_SECONDS = 600.0
LOGOUT = "/api/v1/auth/logout"

# Every check schemathesis has, less two, each for a reason:
# - unsupported_method: a method no route has is answered 404 `{"message":"Not Found"}` by API Gateway HTTP APIs
#   (the local gateway does the same), not 405; that is API Gateway's behaviour, not ours to change.
# - positive_data_acceptance: the API enforces rules no JSON Schema can state (a cursor must be one it issued, a
#   role or model must exist on the stage, a time zone must be IANA's, an expiry in the future, a password varied
#   enough), so schema-valid requests are refused with 400 or 422. Those answers are documented, and checked by
#   `status_code_conformance` and `response_schema_conformance`.
EXCLUDED_CHECKS = ("unsupported_method", "positive_data_acceptance")


def register(base_url: str, email: str) -> str:
    response = httpx.post(
        f"{base_url}/api/v1/auth/register",
        json={"email": email, "password": "correct horse battery", "name": "Fuzz"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["accessToken"])


def fuzz(base_url: str, token: str, report_dir: Path, *operations: str) -> subprocess.CompletedProcess[str]:
    """Run schemathesis over the stack's document: only `operations` (paths) if given, else all but logout."""
    selection = [f"--include-path={path}" for path in operations] or [f"--exclude-path={LOGOUT}"]
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base_url}/openapi.json",
        f"--url={base_url}",
        f"--header=Authorization: Bearer {token}",
        "--checks=all",
        f"--exclude-checks={','.join(EXCLUDED_CHECKS)}",
        f"--max-examples={EXAMPLES_PER_OPERATION}",
        f"--seed={SEED}",
        "--generation-database=none",
        "--request-timeout=30",
        "--wait-for-schema=30",
        "--no-color",
        "--report=junit",
        f"--report-dir={report_dir}",
        *selection,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, cwd=report_dir, check=False
    )


def failures_of(run: subprocess.CompletedProcess[str]) -> str:
    """The part of schemathesis' report that names each failing case and how to reproduce it."""
    output = run.stdout + run.stderr
    start = output.find("FAILURES")
    return output[start if start >= 0 else 0 :][-20_000:]


def test_every_operation_answers_as_documented(start_local_stack: Callable[[], LocalStack], tmp_path: Path) -> None:
    stack = start_local_stack()
    stack.wait_until_healthy()
    admin_token = register(stack.base_url, "fuzz-admin@example.com")  # the stage's first account: its admin
    # Signing out ends the session of the token used, so logout is fuzzed with a session of its own, after the
    # rest: the other operations keep a credential that works throughout.
    logout_token = register(stack.base_url, "fuzz-logout@example.com")

    document = httpx.get(f"{stack.base_url}/openapi.json", timeout=60).json()
    operations = sum(len(item) for item in document["paths"].values())
    documented = [route for route in CHAT_FUNCTION.routes if route.documented]
    assert operations == len(all_routes()) + len(documented)

    everything = fuzz(stack.base_url, admin_token, tmp_path)
    assert everything.returncode == 0, failures_of(everything)
    assert f"{operations - 1} selected / {operations} total" in everything.stdout, everything.stdout[:2000]

    logout = fuzz(stack.base_url, logout_token, tmp_path, LOGOUT)
    assert logout.returncode == 0, failures_of(logout)
    assert f"1 selected / {operations} total" in logout.stdout, logout.stdout[:2000]
