"""A fake Bedrock runtime for `converse_stream` and Titan embeddings' `invoke_model`: a real boto3 bedrock-runtime
client whose HTTP layer is replaced (botocore's `before-send` hook) by scripted responses in Bedrock's binary
event-stream wire format, so botocore's own parser, error handling and `EventStream` run unchanged. An embedding is
the hashing embedder's vector of the text at the requested dimension: deterministic, so tests can reason about it.

botocore's `Stubber` cannot do this: it validates a stubbed response against the output shape, and the `stream`
member must then be a dict, never an iterable of events.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Self, cast

from tests.fakes.scripted import (
    Fail,
    FailMidStream,
    Hang,
    Reply,
    ScriptedServer,
    ToolCallReply,
    block_text,
    using_stop_sequences,
    using_tool_result,
)

_ERROR_CODES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_STREAM_ERRORS = {429: "throttlingException", 500: "internalServerException", 503: "serviceUnavailableException"}


def _header(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode(), value.encode()
    # Header value type 7: a string with a 2-byte length.
    return (
        struct.pack("!B", len(encoded_name)) + encoded_name + struct.pack("!BH", 7, len(encoded_value)) + encoded_value
    )


def event_message(headers: dict[str, str], payload: dict[str, Any]) -> bytes:
    """One message of the AWS event-stream encoding: prelude, prelude CRC, headers, payload, message CRC."""
    encoded_headers = b"".join(_header(name, value) for name, value in headers.items())
    body = json.dumps(payload).encode()
    total = 12 + len(encoded_headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(encoded_headers))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded_headers + body
    return message + struct.pack("!I", zlib.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return event_message({":event-type": kind, ":content-type": "application/json", ":message-type": "event"}, payload)


def stream_exception(code: str, message: str) -> bytes:
    headers = {":exception-type": code, ":content-type": "application/json", ":message-type": "exception"}
    return event_message(headers, {"message": message})


def last_tool_result(body: dict[str, Any]) -> str | None:
    """The text of the last `toolResult` block of the ConverseStream request's messages."""
    for message in reversed(body.get("messages", [])):
        for block in reversed(message.get("content", [])):
            if "toolResult" in block:
                return block_text(block["toolResult"].get("content"))
    return None


class _Body:
    """The `raw` of a botocore response: what urllib3 would stream."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts = parts

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield from self._parts

    def read(self, amt: int | None = None) -> bytes:
        """All that is left (a blob payload such as InvokeModel's body is read, not streamed)."""
        return b"".join(self._parts)

    def close(self) -> None:
        return None


class FakeBedrock(ScriptedServer):
    """Scripted like the HTTP fakes (reply, tool_call, fail, hang, fail_mid_stream); `attach(client)` routes a
    bedrock-runtime client's ConverseStream calls here. `hang` raises botocore's ReadTimeoutError at once."""

    default = Reply("Hello from the fake Bedrock runtime.")

    def attach(self, client: Any) -> Any:
        """Route `client`'s ConverseStream and InvokeModel calls to this fake (replacing any fake attached before)."""
        for operation, answer in (("ConverseStream", self._send), ("InvokeModel", self._invoke_model)):
            event_name = f"before-send.bedrock-runtime.{operation}"
            client.meta.events.unregister(event_name, unique_id=f"fake-bedrock-{operation}")
            client.meta.events.register(event_name, answer, unique_id=f"fake-bedrock-{operation}")
        return client

    def start(self) -> Self:  # no server: the hook answers in-process
        return self

    def stop(self) -> None:
        return None

    def _send(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        from tests.fakes.scripted import RecordedRequest

        body = json.loads(request.body) if request.body else None
        self.requests.append(RecordedRequest(request.method, request.url, dict(request.headers), body))
        behaviour = using_tool_result(self.next_behaviour(), last_tool_result(body or {}))
        inference: dict[str, Any] = (body or {}).get("inferenceConfig") or {}
        behaviour, _ = using_stop_sequences(behaviour, inference.get("stopSequences"))
        if isinstance(behaviour, Hang):
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=request.url)
        if isinstance(behaviour, Fail):
            code = _ERROR_CODES.get(behaviour.status, "InternalServerException")
            headers = {
                "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/",
                "content-type": "application/json",
            }
            if behaviour.retry_after is not None:
                headers["retry-after"] = f"{behaviour.retry_after:g}"
            error = json.dumps({"message": behaviour.message}).encode()
            return AWSResponse(request.url, behaviour.status, cast(Any, headers), _Body(iter([error])))
        headers = {"content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": "fake"}
        return AWSResponse(request.url, 200, cast(Any, headers), _Body(self._events(behaviour)))

    def _invoke_model(self, request: Any, **_: Any) -> Any:
        """Titan Text Embeddings v2: `{inputText, dimensions, normalize}` → `{embedding, inputTextTokenCount}`."""
        from botocore.awsrequest import AWSResponse

        from shared.llm.embeddings import hashing_embedder
        from shared.llm.providers import estimate_tokens
        from tests.fakes.scripted import RecordedRequest

        body = json.loads(request.body) if request.body else {}
        self.requests.append(RecordedRequest(request.method, request.url, dict(request.headers), body))
        behaviour = self.next_behaviour(only_failures=True)
        if isinstance(behaviour, Hang):
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=request.url)
        headers: dict[str, str] = {"content-type": "application/json", "x-amzn-requestid": "fake"}
        if isinstance(behaviour, Fail):
            code = _ERROR_CODES.get(behaviour.status, "InternalServerException")
            headers["x-amzn-ErrorType"] = f"{code}:http://internal.amazon.com/coral/"
            error = json.dumps({"message": behaviour.message}).encode()
            return AWSResponse(request.url, behaviour.status, cast(Any, headers), _Body(iter([error])))
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            headers["x-amzn-ErrorType"] = "ValidationException:http://internal.amazon.com/coral/"
            error = json.dumps({"message": "inputText is required"}).encode()
            return AWSResponse(request.url, 400, cast(Any, headers), _Body(iter([error])))
        vector = hashing_embedder(int(body.get("dimensions") or 1024)).embed_query(text)
        answer = json.dumps({"embedding": vector, "inputTextTokenCount": estimate_tokens(text)}).encode()
        return AWSResponse(request.url, 200, cast(Any, headers), _Body(iter([answer])))

    def _events(self, behaviour: Reply | ToolCallReply | FailMidStream) -> Iterator[bytes]:
        yield event("messageStart", {"role": "assistant"})
        if isinstance(behaviour, FailMidStream):
            for piece in Reply(behaviour.text).chunks()[: behaviour.after_chunks]:
                yield event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            if behaviour.drop:
                from urllib3.exceptions import ProtocolError

                raise ProtocolError("Connection broken: the fake dropped it")
            code = _STREAM_ERRORS.get(behaviour.error_status, "modelStreamErrorException")
            yield stream_exception(code, "the model stream failed")
            return
        index = 0
        if behaviour.text:
            pieces = behaviour.chunks() if isinstance(behaviour, Reply) else [behaviour.text]
            for piece in pieces:
                if isinstance(behaviour, Reply) and behaviour.chunk_delay:
                    time.sleep(behaviour.chunk_delay)
                yield event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}})
            yield event("contentBlockStop", {"contentBlockIndex": index})
            index += 1
        if isinstance(behaviour, ToolCallReply):
            start = {"toolUse": {"toolUseId": behaviour.id, "name": behaviour.name}}
            yield event("contentBlockStart", {"contentBlockIndex": index, "start": start})
            arguments = json.dumps(behaviour.input)
            for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                yield event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}})
            yield event("contentBlockStop", {"contentBlockIndex": index})
            stop_reason, input_tokens, output_tokens = "tool_use", behaviour.input_tokens, behaviour.output_tokens
            cache_read = cache_write = 0
        else:
            stop_reason, input_tokens = behaviour.stop_reason, behaviour.input_tokens
            output_tokens = behaviour.billed_output_tokens
            cache_read, cache_write = behaviour.cache_read_tokens, behaviour.cache_write_tokens
        yield event("messageStop", {"stopReason": stop_reason})
        usage = {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens + cache_read + cache_write,
            "cacheReadInputTokens": cache_read,
            "cacheWriteInputTokens": cache_write,
        }
        yield event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}})


@lru_cache(maxsize=4)
def bedrock_client(region: str = "us-east-1") -> Any:
    """A real bedrock-runtime client with no retries and dummy credentials, for `FakeBedrock.attach` (built once:
    a botocore client costs ~0.4 s)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    return session.client("bedrock-runtime", config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
