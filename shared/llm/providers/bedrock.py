"""Amazon Bedrock's Converse API through boto3 with the function's IAM role. boto3 blocks, so `converse_stream`
runs in a worker thread that hands each event to the event loop as it arrives: nothing is buffered."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from shared.llm.providers import (
    STOP_END_TURN,
    parse_tool_input,
    transport_error,
)
from shared.llm.types import (
    Finished,
    Message,
    ModelRequest,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolUseRequested,
    UsageReport,
    UseTool,
)

# Error codes (in an HTTP response or an exception event inside the stream) another try may survive.
_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelStreamErrorException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ServiceQuotaExceededException",
    }
)
_DONE = object()


def bedrock_runtime(
    region: str | None, *, connect_timeout: float, read_timeout: float, attempts: int = 1, connections: int = 10
) -> tuple[Any, Any]:
    """A bedrock-runtime client and the boto3 session it was built in: a session of its own, as boto3's default one
    is not safe to build clients from concurrently. `attempts` 1 (no retry) leaves retrying to the caller."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": attempts, "mode": "standard"},
        max_pool_connections=connections,
    )
    session = boto3.session.Session()
    return session, session.client("bedrock-runtime", region_name=region, config=config)


class BedrockProvider:
    """Streams from Bedrock. botocore's own retries are off: failover to the next provider is the retry.
    `client` injects a ready bedrock-runtime client (tests); otherwise one is built on first use."""

    def __init__(
        self,
        name: str = "bedrock",
        *,
        region: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        client: Any = None,
    ) -> None:
        self.name = name
        self._region = region
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._client = client
        self._session: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        """The bedrock-runtime client, built once (botocore clients are thread-safe)."""
        with self._lock:
            if self._client is None:
                self._session, self._client = bedrock_runtime(
                    self._region, connect_timeout=self._connect_timeout, read_timeout=self._read_timeout
                )
            return self._client

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        stop_reason = STOP_END_TURN
        usage = UsageReport(0, 0)
        tool_blocks: dict[int, tuple[str, str, list[str]]] = {}
        stopped = False
        async for event in self._events(bedrock_arguments(request)):
            if "contentBlockStart" in event:
                start = event["contentBlockStart"]
                if "toolUse" in start.get("start", {}):
                    tool = start["start"]["toolUse"]
                    tool_blocks[start.get("contentBlockIndex", 0)] = (tool["toolUseId"], tool["name"], [])
            elif "contentBlockDelta" in event:
                body = event["contentBlockDelta"]
                delta = body.get("delta", {})
                if delta.get("text"):
                    yield TextDelta(delta["text"])
                elif "toolUse" in delta and body.get("contentBlockIndex", 0) in tool_blocks:
                    tool_blocks[body.get("contentBlockIndex", 0)][2].append(delta["toolUse"].get("input", ""))
            elif "contentBlockStop" in event:
                index = event["contentBlockStop"].get("contentBlockIndex", 0)
                if (tool := tool_blocks.pop(index, None)) is not None:
                    yield ToolUseRequested(ToolCall(tool[0], tool[1], parse_tool_input(self.name, "".join(tool[2]))))
            elif "messageStop" in event:
                stop_reason = event["messageStop"].get("stopReason") or stop_reason
                stopped = True
            elif "metadata" in event:  # after messageStop
                counts = event["metadata"].get("usage", {})
                usage = UsageReport(
                    counts.get("inputTokens", 0),
                    counts.get("outputTokens", 0),
                    counts.get("cacheReadInputTokens", 0),
                    counts.get("cacheWriteInputTokens", 0),
                )
        if not stopped:
            raise transport_error(self.name, "the stream ended before messageStop")
        yield usage
        yield Finished(stop_reason)

    async def _events(self, arguments: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The stream's event dicts, read in a worker thread and handed over one by one."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        abandoned = threading.Event()

        def hand_over(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed: nobody is listening any more
                abandoned.set()

        def read() -> None:
            try:
                response = self.client().converse_stream(**arguments)
                events: Iterator[dict[str, Any]] = iter(response["stream"])
                try:
                    for event in events:
                        if abandoned.is_set():
                            break
                        hand_over(event)
                finally:
                    close = getattr(response["stream"], "close", None)
                    if close is not None:
                        close()
                hand_over(_DONE)
            except Exception as error:
                hand_over(error)

        reader = loop.run_in_executor(None, read)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    mapped = self._map_error(item)
                    if mapped is None:
                        raise item
                    raise mapped from item
                yield item
            await reader
        finally:
            abandoned.set()

    async def check(self) -> None:
        """Credentials are present and a client can be built; Bedrock has no free call to prove more."""

        def credentials_present() -> bool:
            self.client()
            # An injected client (tests) has no session of ours to ask.
            return self._session is None or self._session.get_credentials() is not None

        try:
            present = await asyncio.to_thread(credentials_present)
        except Exception as error:
            mapped = self._map_error(error)
            if mapped is None:
                raise
            raise mapped from error
        if not present:
            raise ProviderError(f"{self.name}: no AWS credentials", provider=self.name, retryable=False)

    def _map_error(self, error: Exception) -> ProviderError | None:
        from botocore import exceptions
        from urllib3.exceptions import HTTPError as Urllib3Error

        if isinstance(error, exceptions.ClientError):
            details = error.response.get("Error", {})
            code = str(details.get("Code", ""))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # An exception event inside the stream arrives with the 200 of the stream and a camelCase code.
            code = code[:1].upper() + code[1:]
            retryable = code in _RETRYABLE_CODES or (isinstance(status, int) and (status == 429 or status >= 500))
            http_status = status if isinstance(status, int) and status >= 400 else None
            message = f"{self.name} failed: {code or 'error'}"
            return ProviderError(message, provider=self.name, retryable=retryable, status=http_status)
        if isinstance(error, exceptions.ReadTimeoutError | exceptions.ConnectTimeoutError):
            return transport_error(self.name, "timed out")
        if isinstance(error, exceptions.HTTPClientError | Urllib3Error):
            return transport_error(self.name, f"connection failed ({type(error).__name__})")
        if isinstance(error, exceptions.NoCredentialsError | exceptions.ParamValidationError):
            return ProviderError(f"{self.name}: {type(error).__name__}", provider=self.name, retryable=False)
        if isinstance(error, exceptions.BotoCoreError):
            return ProviderError(f"{self.name}: {type(error).__name__}", provider=self.name, retryable=True)
        return None


def bedrock_arguments(request: ModelRequest) -> dict[str, Any]:
    """The Converse API request for `request`."""
    arguments: dict[str, Any] = {
        "modelId": request.model,
        "messages": [bedrock_message(message) for message in request.messages if _has_content(message)],
        "inferenceConfig": {"maxTokens": request.max_tokens},
    }
    if request.temperature is not None:
        arguments["inferenceConfig"]["temperature"] = request.temperature
    if request.stop_sequences:
        arguments["inferenceConfig"]["stopSequences"] = list(request.stop_sequences)
    if request.system:
        arguments["system"] = [{"text": request.system}]
    if request.tools and (request.tool_choice != "none" or _uses_tools(request.messages)):
        # Converse has no "none": the tools are left out instead, unless the history holds tool calls, which
        # Converse refuses without the tools (the model may then still call one).
        arguments["toolConfig"] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": tool.name,
                        "description": tool.description,
                        "inputSchema": {"json": tool.input_schema},
                    }
                }
                for tool in request.tools
            ]
        }
        if isinstance(request.tool_choice, UseTool):
            arguments["toolConfig"]["toolChoice"] = {"tool": {"name": request.tool_choice.name}}
        elif request.tool_choice == "required":
            arguments["toolConfig"]["toolChoice"] = {"any": {}}
    return arguments


def _uses_tools(messages: Sequence[Message]) -> bool:
    return any(message.tool_calls or message.tool_results for message in messages)


def bedrock_message(message: Message) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {
            "toolResult": {
                "toolUseId": result.tool_call_id,
                "content": [{"text": result.content}],
                "status": "error" if result.is_error else "success",
            }
        }
        for result in message.tool_results
    ]
    if message.content:
        content.append({"text": message.content})
    content.extend(
        {"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.input}} for call in message.tool_calls
    )
    return {"role": message.role, "content": content}


def _has_content(message: Message) -> bool:
    return bool(message.content or message.tool_calls or message.tool_results)
