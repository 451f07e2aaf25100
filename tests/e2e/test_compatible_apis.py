"""The README's two SDK snippets, as printed, against the running local stack (`make dev`): the official `openai`
and `anthropic` SDKs with a Stratus API key, answered by the offline model."""

from __future__ import annotations

import uuid

import anthropic
import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e


def chat_key(http: httpx.Client) -> str:
    email = f"sdk-{uuid.uuid4().hex[:8]}@example.com"
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"}).json()
    auth = {"authorization": f"Bearer {token['accessToken']}"}
    created = http.post("/api/v1/api-keys", headers=auth, json={"name": "sdk", "permissions": ["ai.chat"]})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def test_the_openai_sdk_lists_models_and_chats_buffered_and_streamed(http: httpx.Client, base_url: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=chat_key(http))

    assert next(iter(client.models.list())).id == "stratus-auto"
    reply = client.chat.completions.create(model="stratus-auto", messages=[{"role": "user", "content": "Hello"}])
    assert '"Hello"' in (reply.choices[0].message.content or "")
    streamed = client.chat.completions.create(
        model="stratus-auto", messages=[{"role": "user", "content": "Hello again"}], stream=True
    )
    assert '"Hello again"' in "".join(chunk.choices[0].delta.content or "" for chunk in streamed)


def test_the_anthropic_sdk_stream_helper_assembles_the_buffered_message(http: httpx.Client, base_url: str) -> None:
    client = anthropic.Anthropic(base_url=base_url, api_key=chat_key(http))
    ask = {"model": "stratus-auto", "max_tokens": 512, "messages": [{"role": "user", "content": "Hello"}]}

    message = client.messages.create(**ask)  # type: ignore[call-overload]
    with client.messages.stream(**ask) as stream:  # type: ignore[arg-type]
        texts = list(stream.text_stream)
        final = stream.get_final_message()

    assert "".join(texts) == message.content[0].text
    assert final.model_dump(exclude={"id"}) == message.model_dump(exclude={"id"})
