"""The local WebSocket API in one process: the gateway under uvicorn serves HTTP, `@connections` and Lambda's
Invoke API on a real port (the handlers' boto3 calls go there unchanged), on moto; WebSocket clients connect
in-process through Starlette's test client. tests/e2e/test_websocket.py drives the same over real sockets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from infra.catalog import WEBSOCKET_LOCAL_PATH
from infra.local.gateway import Gateway
from infra.local.server import build_gateway
from tests.e2e.conftest import free_port
from tests.integration.conftest import PASSWORD


class Stack:
    def __init__(self, base_url: str, gateway: Gateway) -> None:
        self.base_url = base_url
        self.gateway = gateway
        self.http = httpx.Client(base_url=base_url + "/api/v1", timeout=30)
        self.ws = TestClient(gateway, base_url="http://127.0.0.1")

    def register(self, email: str) -> tuple[str, str]:
        response = self.http.post("/auth/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return str(response.json()["user"]["id"]), str(response.json()["accessToken"])


@pytest.fixture
def stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """moto in-process (`aws`) for the tables; the handlers' calls to the gateway's own URL pass through it."""
    from shared.aws import reset_clients

    monkeypatch.setenv("WORKER_FUNCTION", "set by build_gateway")  # restored after the test
    gateway = build_gateway()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(gateway, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_URL", base_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", base_url)
    reset_clients()
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    stack = Stack(base_url, gateway)
    try:
        yield stack
    finally:
        stack.http.close()
        server.should_exit = True
        thread.join(10)
        gateway.close()
        reset_clients()


def receive_until(ws: Any, event: str, timeout_frames: int = 200) -> list[dict[str, Any]]:
    """Frames up to and including the first `event` frame."""
    frames = []
    for _ in range(timeout_frames):
        frame = ws.receive_json()
        frames.append(frame)
        if frame["event"] == event:
            return frames
    raise AssertionError(f"no {event} in {frames}")


def test_a_connection_without_a_valid_token_is_refused(stack: Stack) -> None:
    for path, status in ((WEBSOCKET_LOCAL_PATH, 401), (WEBSOCKET_LOCAL_PATH + "?token=forged", 403)):
        with pytest.raises(WebSocketDenialResponse) as refused, stack.ws.websocket_connect(path):
            pass
        assert refused.value.status_code == status


def test_an_unknown_path_is_refused(stack: Stack) -> None:
    _, token = stack.register("nowhere@example.com")
    with pytest.raises(WebSocketDisconnect), stack.ws.websocket_connect(f"/elsewhere?token={token}"):
        pass


def test_two_users_in_one_room_and_a_chat_reply(stack: Stack) -> None:
    ada_id, ada_token = stack.register("ada@example.com")
    bob_id, bob_token = stack.register("bob@example.com")
    ada_auth = {"authorization": f"Bearer {ada_token}"}
    project = stack.http.post("/projects", headers=ada_auth, json={"name": "Team"}).json()["id"]
    shared = stack.http.post(
        f"/projects/{project}/members", headers=ada_auth, json={"email": "bob@example.com", "role": "viewer"}
    )
    assert shared.status_code == 201, shared.text
    room = stack.http.post("/conversations", headers=ada_auth, json={"title": "Room", "projectId": project}).json()
    private = stack.http.post("/conversations", headers=ada_auth, json={"title": "Mine"}).json()["id"]

    with (
        stack.ws.websocket_connect(f"{WEBSOCKET_LOCAL_PATH}?token={ada_token}") as ada,
        stack.ws.websocket_connect(f"{WEBSOCKET_LOCAL_PATH}?token={bob_token}") as bob,
    ):
        ada.send_json({"action": "conversation:join", "conversationId": room["id"]})
        assert receive_until(ada, "presence")[-1]["data"]["members"] == [ada_id]
        bob.send_json({"action": "conversation:join", "conversationId": room["id"]})
        assert receive_until(bob, "presence")[-1]["data"]["members"] == sorted([ada_id, bob_id])
        seen = receive_until(ada, "presence")[-1]["data"]
        assert (seen["userId"], seen["status"]) == (bob_id, "joined")

        bob.send_json({"action": "chat:typing", "conversationId": room["id"], "isTyping": True})
        assert receive_until(ada, "chat:typing")[-1]["data"] == {
            "conversationId": room["id"], "userId": bob_id, "isTyping": True
        }  # fmt: skip

        # Someone else's conversation: refused, and the connection stays usable.
        bob.send_json({"action": "conversation:join", "conversationId": private})
        assert bob.receive_json()["data"]["code"] == "conversation_not_found"
        for bad in ("{oops", json.dumps({"action": "chat:dance"}), json.dumps({"action": "chat:send",
                                                                               "message": "x" * 40_000})):  # fmt: skip
            bob.send_text(bad)
            assert bob.receive_json()["event"] == "chat:error"
        bob.send_json({"action": "ping"})
        assert bob.receive_json() == {"event": "pong", "data": {}}

        ada.send_json({"action": "chat:send", "conversationId": room["id"], "message": "Hello, room"})
        frames = [*receive_until(ada, "chat:response")]
        while frames[-1]["data"].get("type") != "end":
            frames.append(ada.receive_json())
        events = [f["data"] for f in frames if f["event"] == "chat:response"]
        assert events[0]["type"] == "start"
        assert events[0]["conversationId"] == room["id"]
        assert [e["type"] for e in events][-2:] == ["usage", "end"]
        assert len({e["messageId"] for e in events}) == 1

        bob.close()
        left = receive_until(ada, "presence")[-1]["data"]
        assert (left["userId"], left["status"], left["members"]) == (bob_id, "left", [ada_id])

    messages = stack.http.get(f"/conversations/{room['id']}/messages", headers=ada_auth).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["id"] == events[0]["messageId"]
    assert messages[-1]["content"] == "".join(e["delta"] for e in events if e["type"] == "content")


def test_posting_to_an_unknown_connection_is_gone(stack: Stack) -> None:
    response = httpx.post(stack.base_url + "/@connections/nobody", content=b"{}")
    assert response.status_code == 410
    assert response.headers["x-amzn-errortype"] == "GoneException"
