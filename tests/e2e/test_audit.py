"""The audit log on the running local stack, over real HTTP: a sign-in reaches the user's own log through the events
queue and the events function (asynchronously: the test polls briefly), and the stage's log is for auditors."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
# Delivery is asynchronous (the local event source polls the queue): how long the test waits for it.
WAIT_SECONDS = 20.0


def test_a_login_shows_in_the_users_own_log_and_not_in_anyone_elses(http: httpx.Client) -> None:
    email = f"audit-{uuid.uuid4().hex[:8]}@example.com"
    assert http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    response = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD},
                         headers={"user-agent": "stratus-e2e/1.0"})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    user_id, auth = body["user"]["id"], {"authorization": f"Bearer {body['accessToken']}"}

    logins: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while not logins and time.monotonic() < deadline:
        page = http.get("/api/v1/audit", params={"action": "user.login"}, headers=auth)
        assert page.status_code == 200, page.text
        logins = page.json()["items"]
        if not logins:
            time.sleep(0.25)

    assert len(logins) == 1, f"no user.login in the log after {WAIT_SECONDS} s"
    (login,) = logins
    assert (login["outcome"], login["actor"]["userId"]) == ("success", user_id)
    assert login["actor"]["userAgent"] == "stratus-e2e/1.0"
    assert PASSWORD not in str(login)
    # A member is no auditor.
    if "admin" not in body["user"]["roles"]:
        assert http.get("/api/v1/admin/audit", headers=auth).status_code == 403
