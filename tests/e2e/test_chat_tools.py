"""Chat's tool loop on the running local stack over real HTTP: an admin registers the time server the stage ships
(stdio, the default allow-list), a user enables it, a fake Anthropic API in this process asks for the tool, the
stream pauses on `tool_approval` until the user approves through the API, and the model's answer uses the result."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LocalStack, model_environment, running_stack
from tests.fakes.anthropic_server import FakeAnthropic

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model: FakeAnthropic) -> Iterator[LocalStack]:
    log_path = tmp_path_factory.mktemp("tools-stack") / "local.log"
    with running_stack(log_path, model_environment(model.base_url)) as stack:
        yield stack


def signed_up(http: httpx.Client) -> dict[str, str]:
    email = f"tools-{uuid.uuid4().hex[:8]}@example.com"
    response = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['accessToken']}"}


def test_a_tool_call_waits_for_approval_and_its_result_reaches_the_answer(
    stack: LocalStack, model: FakeAnthropic
) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http, httpx.Client(base_url=stack.base_url) as other:
        admin = signed_up(http)  # the stage's first account
        registration = {
            "name": "clock",
            "type": "stdio",
            "scope": "stage",
            "config": {"command": "python", "args": ["-m", "mcp_server_time"]},
            "requireApproval": ["get_current_time"],
        }
        created = http.post("/api/v1/mcp/servers", headers=admin, json=registration)
        assert created.status_code == 201, created.text
        member = signed_up(http)
        enabled = http.put("/api/v1/users/settings", headers=member, json={"enabledMcpServers": [created.json()["id"]]})
        assert enabled.status_code == 200, enabled.text
        model.tool_call("clock__get_current_time", {"timezone": "UTC"}, id="toolu_clock")
        model.reply("The clock says: {tool_result}")

        events: list[dict[str, Any]] = []
        with http.stream("POST", "/api/v1/ai/chat/stream", headers=member, json={"message": "What time is it?"}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(json.loads(line.removeprefix("data: ")))
                if events[-1]["type"] == "tool_approval":
                    message_id = events[0]["messageId"]
                    answer = {"toolCallId": "toolu_clock", "approved": True}
                    # Another user cannot answer it; the user can, from another connection.
                    path = f"/api/v1/ai/chat/{message_id}/tool-approvals"
                    assert other.post(path, headers=admin, json=answer).status_code == 404
                    approved = other.post(path, headers=member, json=answer)
                    assert approved.status_code == 200, approved.text

    kinds = [event["type"] for event in events]
    assert kinds[:4] == ["start", "tool_use", "tool_approval", "tool_result"]
    assert kinds[-2:] == ["usage", "end"]
    (result,) = [event for event in events if event["type"] == "tool_result"]
    assert result["isError"] is False
    assert '"timezone": "UTC"' in result["content"]
    answer = "".join(event["delta"] for event in events if event["type"] == "content")
    assert answer.startswith("The clock says: ")
    assert '"timezone": "UTC"' in answer
    # The model was offered the tool under its prefixed name and read the result in its second request.
    offered = [tool["name"] for tool in model.requests[-2].body["tools"]] if model.requests[-2].body else []
    assert "clock__get_current_time" in offered

    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        conversation = http.get(f"/api/v1/conversations/{events[0]['conversationId']}", headers=member).json()
    reply = conversation["messages"]["items"][-1]
    (stored,) = reply["metadata"]["toolCalls"]
    assert stored["toolName"] == "clock__get_current_time"
    assert stored["approved"] is True
    assert '"timezone": "UTC"' in stored["content"]
