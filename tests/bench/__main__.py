"""`make bench`: each function's cold-start import time beside a FastAPI+Mangum hello world measured in the same
run, and warm latencies through the handlers on moto.

Import time is measured inside a fresh interpreter around the handler import alone (what Lambda's init phase
spends on our code), as the median of several processes.

Chat's time before the first token is given three ways, so a change can see its own cost apart from moto's:
- through the whole local path, on moto (the figure a developer feels);
- the same replies with every DynamoDB call answered from memory: the code's own overhead. Each DynamoDB
  request still goes all the way through botocore (validation, serialization, signing, response parsing and
  its CRC32 check); only the HTTP exchange is replaced, at botocore's `Endpoint._send`, by the bytes moto
  answered to the same request in recorded replies of the same conversation (see `DynamoDBAnswers`);
- the moto floor: the DynamoDB calls made before the first token times what one call costs on the local moto,
  which serves them one at a time where DynamoDB runs them at once.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

ROOT = Path(__file__).resolve().parents[2]
IMPORT_RUNS = 9
WARM_CALLS = 300

HELLO_WORLD = textwrap.dedent(
    """
    from fastapi import FastAPI
    from mangum import Mangum

    app = FastAPI()


    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"message": "hello"}


    lambda_handler = Mangum(app, lifespan="off")
    """
)

_MEASURE = (
    "import importlib, sys, time; t = time.perf_counter(); importlib.import_module(sys.argv[1]); "
    "print(time.perf_counter() - t)"
)


def bench_environment() -> dict[str, str]:
    from shared.tables import TABLES

    env = dict(os.environ)
    env.update(
        STAGE="bench",
        LOCAL_MODE="true",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="ERROR",
        PASSWORD_HASH_COST="12",
        SIGNING_KEYS_SECRET="stratus/bench/signing-keys",
        PAYLOAD_BUCKET="stratus-bench-payloads",
    )
    env.update({spec.env_var: spec.physical_name("bench") for spec in TABLES})
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def import_median_ms(module: str, env: dict[str, str], extra_path: str | None = None) -> float:
    run_env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), extra_path])))
    samples = []
    for _ in range(IMPORT_RUNS):
        result = subprocess.run(
            [sys.executable, "-c", _MEASURE, module], env=run_env, cwd=ROOT, capture_output=True, text=True, check=True
        )
        samples.append(float(result.stdout.strip()) * 1000)
    return statistics.median(samples)


def report_imports(env: dict[str, str]) -> None:
    from infra.catalog import AUTHORIZER_FUNCTION, HTTP_FUNCTIONS, STREAMING_FUNCTIONS

    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "hello_handler.py").write_text(HELLO_WORLD)
        hello = import_median_ms("hello_handler", env, folder)
    print(f"\nCold-start import time (median of {IMPORT_RUNS} fresh processes)")
    print(f"  {'FastAPI+Mangum hello world':<34} {hello:8.1f} ms   1.00x")
    for spec in (*HTTP_FUNCTIONS, AUTHORIZER_FUNCTION, *STREAMING_FUNCTIONS):
        module = spec.app.split(":")[0] if spec.streaming and spec.app else spec.handler.rsplit(".", 1)[0]
        took = import_median_ms(module, env)
        print(f"  {spec.name + ' (' + module + ')':<34} {took:8.1f} ms   {took / hello:.2f}x")


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"p50 {pick(0.50):6.2f} ms   p95 {pick(0.95):6.2f} ms   p99 {pick(0.99):6.2f} ms"


def timed(call: Callable[[], Any], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def report_warm_latency(env: dict[str, str]) -> None:
    os.environ.update(env)
    from moto import mock_aws

    from functions.identity import service
    from functions.identity.authorizer import lambda_handler as authorizer
    from functions.identity.handler import lambda_handler as identity
    from functions.identity.models import ApiKeyCreate
    from infra.local.events import IncomingRequest, LambdaContext, RequestTime, build_authorizer_event, build_http_event
    from infra.local.moto_patches import patch_moto
    from infra.local.provision import provision_stage
    from shared.auth.verify import verify_credential

    patch_moto()
    with mock_aws():
        # The stage's queues among them: what the handlers publish goes to the events queue, as in a stage. The
        # parts that follow run in processes of their own and provision their own, so none of this outlives it.
        provisioned = provision_stage("bench")
        os.environ.update(provisioned)
        signed_in = service.register("bench@example.com", "bench password 123", "Bench")
        token = signed_in.body.access_token
        api_key = service.create_api_key(verify_credential(token), ApiKeyCreate(name="bench")).key

        def request(credential: str) -> IncomingRequest:
            headers = (("authorization", f"Bearer {credential}"), ("host", "bench.local"))
            return IncomingRequest("GET", "/api/v1/auth/me", "/api/v1/auth/me", headers=headers)

        route_key = "GET /api/v1/auth/me"
        context = LambdaContext(function_name="bench", memory_limit_in_mb=1769, timeout_seconds=29, region="us-east-1")

        def authorizer_event(credential: str) -> dict[str, Any]:
            return build_authorizer_event(
                request(credential), route_key=route_key, identity_source=[f"Bearer {credential}"],
                request_id="bench", now=RequestTime.now(), region="us-east-1",
            )  # fmt: skip

        answer = authorizer(authorizer_event(token), context)["context"]
        me_event = build_http_event(
            request(token), route_key=route_key, request_id="bench", now=RequestTime.now(), authorizer_context=answer
        )
        assert identity(me_event, context)["statusCode"] == 200
        for _ in range(20):
            identity(me_event, context)
        jwt_event, key_event = authorizer_event(token), authorizer_event(api_key)
        cases: dict[str, Callable[[], Any]] = {
            "GET /auth/me through the handler": lambda: identity(me_event, context),
            "authorizer, access token": lambda: authorizer(jwt_event, context),
            "authorizer, API key": lambda: authorizer(key_event, context),
        }
        print(f"\nWarm latency on moto ({WARM_CALLS} calls each)")
        for name, call in cases.items():
            print(f"  {name:<34} {percentiles(timed(call, WARM_CALLS))}")

        report_conversation_reads(verify_credential(token), answer, context)
        report_revocation_checks(token)
    for name in provisioned.keys() - env.keys():
        del os.environ[name]


def report_revocation_checks(token: str) -> None:
    """What checking revocations costs an access token: nothing read while the view is fresh, one Query when due."""
    from shared.auth.revocations import RevocationView, use_revocation_view
    from shared.auth.verify import verify_credential

    calls: list[tuple[str, float]] = []
    verify_credential(token)  # the view is read now, if it was due
    with _recording_calls(calls):
        fresh = timed(lambda: verify_credential(token), WARM_CALLS)
    previous = use_revocation_view(RevocationView(refresh_seconds=lambda: 0.0))
    try:
        verify_credential(token)
        due = timed(lambda: verify_credential(token), WARM_CALLS)
    finally:
        use_revocation_view(previous)
    print(f"\nRevocation checks on moto ({WARM_CALLS} access-token verifications each)")
    print(f"  {'view fresh (read at most every 2 s)':<40} {percentiles(fresh)}")
    print(f"  {'  DynamoDB calls in those verifications':<40} {len(calls)}")
    print(f"  {'view due (one Query of new entries)':<40} {percentiles(due)}")


def report_conversation_reads(principal: Any, authorizer_context: dict[str, Any], context: Any) -> None:
    """Listing 1,000 conversations and reading one with 500 messages, page by page through the handler."""
    import json

    from botocore.client import BaseClient

    from functions.conversations import service
    from functions.conversations.handler import lambda_handler as conversations
    from functions.conversations.models import ConversationCreate
    from infra.local.events import IncomingRequest, RequestTime, build_http_event
    from shared import events

    for number in range(1000):
        service.create_conversation(principal, ConversationCreate(title=f"conversation {number}"))
    long_one = service.create_conversation(principal, ConversationCreate(title="long"))
    for number in range(500):
        service.append_message(principal, long_one.id, "user", f"message {number} " + "lorem ipsum " * 40)

    events.flush()  # what creating them published is sent before the walks are timed
    calls: list[str] = []
    in_fake: list[float] = []
    make_api_call = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name != "dynamodb":  # the events sender's SQS calls, on its own thread
            return make_api_call(self, operation, params)
        calls.append(operation)
        started = time.perf_counter()
        try:
            return make_api_call(self, operation, params)
        finally:
            in_fake.append((time.perf_counter() - started) * 1000)

    def walk(path: str, route_key: str, cursor_name: str, **query: str) -> int:
        """Follow cursors through the handler to the end; returns how many items were read."""
        items, cursor = 0, None
        while True:
            params = query | ({cursor_name: cursor} if cursor else {})
            raw_query = "&".join(f"{name}={value}" for name, value in params.items())
            request = IncomingRequest("GET", path, path, raw_query_string=raw_query, headers=(("host", "bench.local"),))
            event = build_http_event(
                request, route_key=route_key, request_id="bench", now=RequestTime.now(),
                authorizer_context=authorizer_context, path_parameters={"conversationId": long_one.id},
            )  # fmt: skip
            body = json.loads(conversations(event, context)["body"])
            page = body.get("messages", body)
            items += len(page["items"])
            cursor = page["nextCursor"]
            if not cursor:
                return items

    readings = {
        "list 1,000 conversations (100 a page)": lambda: walk(
            "/api/v1/conversations", "GET /api/v1/conversations", "cursor", limit="100"
        ),
        "read 500 messages (100 a page)": lambda: walk(
            f"/api/v1/conversations/{long_one.id}",
            "GET /api/v1/conversations/{conversationId}",
            "messagesCursor",
            messagesLimit="100",
        ),
    }
    print("\nConversation reads through the handler on moto (whole walk, 20 runs each)")
    print("  (moto answers a GSI query by sorting the whole index in Python: its time is shown apart)")
    BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        for name, read in readings.items():
            calls.clear()
            items = read()
            operations = ", ".join(f"{calls.count(op)} {op}" for op in sorted(set(calls)))
            walks, ours = [], []
            for _ in range(20):
                in_fake.clear()
                walk_ms = timed(read, 1)[0]
                walks.append(walk_ms)
                ours.append(walk_ms - sum(in_fake))
            print(f"  {name:<40} {items} items, DynamoDB calls: {operations}")
            print(f"  {'  whole walk':<40} {percentiles(walks)}")
            print(f"  {'  of it outside the AWS fake':<40} {percentiles(ours)}")
    finally:
        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]


CHAT_RUNS = 30
MCP_HTTP_RUNS = 20
MCP_STDIO_RUNS = 5
MCP_BUILD_RUNS = 200
CHAT_WORDS = 200


def report_chat_overhead() -> None:
    """Time to first token and time per chunk, through the whole chat path on the local stack over real HTTP,
    beside the same reply streamed from the same fake provider straight through its SDK."""
    import asyncio
    import json

    from tests.fakes.anthropic_server import FakeAnthropic
    from tests.fakes.scripted import Reply

    reply = Reply(" ".join(f"word{n}" for n in range(CHAT_WORDS)), input_tokens=100)
    with FakeAnthropic() as fake:
        fake.default = reply
        os.environ.update(ANTHROPIC_API_KEY="bench", ANTHROPIC_BASE_URL=fake.base_url, POWERTOOLS_LOG_LEVEL="ERROR",
                          MCP_ALLOW_PRIVATE="true")  # fmt: skip
        from tests.bench.stack import running_local_stack

        with running_local_stack("bench") as base_url:
            calls: list[tuple[str, float]] = []
            ends: list[float] = []
            with _recording_calls(calls):
                path, before_first = _chat_over_http(base_url, calls, ends=ends)
            answers = DynamoDBAnswers()
            memory_cpu: list[float] = []
            with answers.answering():
                (memory_first, _), _ = _chat_over_http(
                    base_url, [], email="memory@example.com", answers=answers, cpu=memory_cpu
                )
            direct_cpu: list[float] = []
            direct = asyncio.run(_chat_direct(direct_cpu))
            (with_tools_first, _), _ = _chat_with_two_cached_tool_servers(base_url)
            from tests.bench.compatible import openai_api_over_http

            compatible_first, compatible_chunk = openai_api_over_http(base_url, CHAT_RUNS)
            get_item = _local_get_item_ms()
            report_realtime(base_url)
            from tests.bench.streams import report_streams

            report_streams(base_url)
            from tests.bench.playground import report_playground

            report_playground(base_url, fake)
    (path_first, path_chunk), (direct_first, direct_chunk) = path, direct
    added_first = [p - d for p, d in zip(sorted(path_first), sorted(direct_first), strict=True)]
    print(f"\nChat overhead on the local stack ({CHAT_RUNS} replies of {CHAT_WORDS} chunks, fake Anthropic)")
    print(f"  {'first token, provider SDK direct':<40} {percentiles(direct_first)}")
    print(f"  {'first token, whole chat path':<40} {percentiles(path_first)}")
    print(f"  {'added before the first token':<40} {percentiles(added_first)}")
    added_from_memory = [m - d for m, d in zip(sorted(memory_first), sorted(direct_first), strict=True)]
    print(f"  {'first token, DynamoDB from memory':<40} {percentiles(memory_first)}")
    print(f"  {'added, DynamoDB from memory':<40} {percentiles(added_from_memory)}   (goal p50 <= 5 ms)")
    added_cpu = statistics.median(memory_cpu) - statistics.median(direct_cpu)
    print(f"  {'CPU before the first token, direct':<40} {percentiles(direct_cpu)}")
    print(f"  {'CPU before the first token, from memory':<40} {percentiles(memory_cpu)}")
    print(f"  {'added CPU, from memory (p50 difference)':<40} {added_cpu:.2f} ms   (every thread of the process)")
    missed = f"{len(answers.misses)} not recorded, answered by moto"
    print(f"  {'':<40} ({answers.answered} DynamoDB calls answered from memory, {missed})")
    print(f"  {'per chunk, provider SDK direct':<40} {percentiles(direct_chunk)}")
    print(f"  {'per chunk, whole chat path':<40} {percentiles(path_chunk)}")
    added_chunk = statistics.median(path_chunk) - statistics.median(direct_chunk)
    print(f"  {'added per chunk (p50 difference)':<40} {added_chunk:.3f} ms   (goal <= 0.5 ms)")
    print(f"  {'end of reply, last content to close':<40} {percentiles(ends)}   (reply stored, usage, end)")
    compatible_added = [c - d for c, d in zip(sorted(compatible_first), sorted(direct_first), strict=True)]
    print(f"  {'first token, OpenAI-compatible API':<40} {percentiles(compatible_first)}")
    print(f"  {'  added before the first token':<40} {percentiles(compatible_added)}")
    beside_chat = statistics.median(compatible_first) - statistics.median(path_first)
    print(f"  {'  beside chat (p50 difference)':<40} {beside_chat:.2f} ms   (goal <= 1 ms)")
    print(f"  {'per chunk, OpenAI-compatible API':<40} {percentiles(compatible_chunk)}")
    chunk_beside_chat = statistics.median(compatible_chunk) - statistics.median(path_chunk)
    print(f"  {'  per chunk beside chat (p50 difference)':<40} {chunk_beside_chat:.3f} ms   (goal <= 1 ms)")
    added_by_tools = statistics.median(with_tools_first) - statistics.median(path_first)
    print(f"  {'first token, two MCP servers cached':<40} {percentiles(with_tools_first)}")
    print(f"  {'added by two cached MCP servers (p50)':<40} {added_by_tools:.2f} ms   (goal <= 2 ms; the registry"
          " read once per 5 s window)")  # fmt: skip
    counted = ", ".join(f"{count} {name}" for name, count in sorted(Counter(before_first).items()))
    print(f"  {'DynamoDB calls before the first token':<40} {counted}")
    print(f"  {'one GetItem alone on the local moto':<40} {percentiles(get_item)}")
    one_call = statistics.median(get_item)
    floor = f"{len(before_first)} calls x {one_call:.2f} ms = {len(before_first) * one_call:.1f} ms"
    print(f"  {'moto floor before the first token':<40} {floor}   (moto serves one call at a time)")
    del json


def _bench_tool_servers(url: str) -> list[Any]:
    from shared.mcp_client import HttpServer, ToolServer
    from tests.integration.conftest import TIME_SERVER

    return [ToolServer("bench-http", "everything", HttpServer(url)), ToolServer("bench-stdio", "time", TIME_SERVER)]


def _chat_with_two_cached_tool_servers(base_url: str) -> tuple[tuple[list[float], list[float]], list[str]]:
    """The same replies for a user who registered two MCP servers of their own through the API (server-everything
    over HTTP, once with a sealed header and once without) and enabled both, their tool lists cached by the warm-up
    replies: what is measured is the whole of it, the registry's answer (read once per `SERVERS_REFRESH_SECONDS`), the
    headers unsealed and the tools built."""
    from tests.integration.conftest import running_everything

    with running_everything() as url:

        def register_servers(http: Any, auth: dict[str, str]) -> dict[str, Any]:
            ids = []
            for name, headers in (("everything", {"authorization": "Bearer bench-secret"}), ("again", {})):
                body = {"name": name, "type": "http", "config": {"url": url, "headers": headers}}
                response = http.post("/api/v1/mcp/servers", headers=auth, json=body)
                response.raise_for_status()
                ids.append(response.json()["id"])
            return {"enabledMcpServers": ids}

        return _chat_over_http(base_url, [], email="tools@example.com", setup=register_servers)


def report_mcp() -> None:
    """MCP connect and tools/list latency over streamable HTTP and stdio, and the tool runner built for a reply
    over two servers whose lists are cached (what chat adds before the model is called)."""
    import asyncio

    from functions.chat import tools
    from shared.mcp_client import HttpServer, McpServer, ToolServer, mcp_session
    from tests.integration.conftest import TIME_SERVER, dev_settings, running_everything

    settings = dev_settings()

    async def connect_and_list(server: McpServer) -> float:
        started = time.perf_counter()
        async with mcp_session(server, settings=settings) as session:
            await session.list_tools()
        return (time.perf_counter() - started) * 1000

    async def cached_builds(servers: list[ToolServer], count: int) -> list[float]:
        await tools.tool_runner(servers, "bench-user", "bench-message")  # lists and caches them
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            runner = await tools.tool_runner(servers, "bench-user", "bench-message")
            samples.append((time.perf_counter() - started) * 1000)
            assert runner is not None
            await runner.aclose()
        return samples

    with running_everything() as url:
        http = [asyncio.run(connect_and_list(HttpServer(url))) for _ in range(MCP_HTTP_RUNS)]
        stdio = [asyncio.run(connect_and_list(TIME_SERVER)) for _ in range(MCP_STDIO_RUNS)]
        from shared.settings import get_settings

        with patch.dict(
            os.environ, STAGE=os.environ.get("STAGE", "bench"), LOCAL_MODE="true", MCP_ALLOW_PRIVATE="true"
        ):
            get_settings.cache_clear()
            built = asyncio.run(cached_builds(_bench_tool_servers(url), MCP_BUILD_RUNS))
        get_settings.cache_clear()
    print("\nMCP (server-everything over streamable HTTP, mcp-server-time over stdio)")
    print(f"  {'connect + tools/list, HTTP':<40} {percentiles(http)}")
    print(f"  {'connect + tools/list, stdio':<40} {percentiles(stdio)}")
    print(f"  {'chat tools for two cached servers':<40} {percentiles(built)}   (goal <= 2 ms, no network call)")


@contextmanager
def _recording_calls(calls: list[tuple[str, float]]) -> Iterator[None]:
    """Every DynamoDB call this process makes, with when it started (the gateway runs the handlers in-process)."""
    from botocore.client import BaseClient

    make_api_call = BaseClient._make_api_call

    def recording(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.append((operation, time.perf_counter()))
        return make_api_call(self, operation, params)

    with patch.object(BaseClient, "_make_api_call", recording):
        yield


def _local_get_item_ms() -> list[float]:
    """What one DynamoDB call costs on the local moto by itself: the floor under every call the chat path makes."""
    from shared.aws import client
    from shared.tables import CHAT

    dynamodb = client("dynamodb")
    table = os.environ[CHAT.env_var]
    key = {"pk": {"S": "BENCH"}, "sk": {"S": "GET"}}
    return timed(lambda: dynamodb.get_item(TableName=table, Key=key), WARM_CALLS)


ROOM_MEMBERS = 100


def report_realtime(base_url: str) -> None:
    """Fan-out of one presence event to a room of 100 connections (the handler's own code, DynamoDB on the local
    stack, posts counted by a stand-in management client), and `chat:send` to the first reply content over a real
    WebSocket on the local stack."""
    import json

    import httpx
    from botocore.client import BaseClient
    from websockets.sync.client import connect

    from functions.realtime import connections
    from functions.realtime import store as rooms

    with httpx.Client(base_url=base_url, timeout=30) as http:
        token = http.post(
            "/api/v1/auth/register", json={"email": "rooms@example.com", "password": "bench password 123"}
        ).json()["accessToken"]
        room = http.post(
            "/api/v1/conversations", headers={"authorization": f"Bearer {token}"}, json={"title": "bench room"}
        ).json()["id"]

    for number in range(ROOM_MEMBERS):
        rooms.put_connection(f"bench-{number}", f"user-{number}", {"userId": f"user-{number}"})
        connection = rooms.get_connection(f"bench-{number}")
        assert connection is not None
        rooms.join_room(connection, room)

    posted: list[str] = []

    class CountingManagement:
        def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:  # noqa: N803 - boto3's names
            posted.append(ConnectionId)

    calls: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name != "dynamodb":  # the events sender's SQS calls, on its own thread
            return make_api_call(self, operation, params)
        calls.append(operation)
        return make_api_call(self, operation, params)

    real_client = connections.management_client
    connections.management_client = lambda endpoint: CountingManagement()  # type: ignore[assignment]
    BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        fan_outs = []
        for _ in range(10):
            posted.clear()
            calls.clear()
            started = time.perf_counter()
            connections.Poster("bench").presence(room, "user-0", "joined")
            fan_outs.append((time.perf_counter() - started) * 1000)
    finally:
        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        connections.management_client = real_client
    operations = ", ".join(f"{calls.count(op)} {op}" for op in sorted(set(calls)))
    print("\nRealtime on the local stack")
    print(f"  {'presence to a room of 100 connections':<40} {percentiles(fan_outs)}")
    print(f"  {'':<40} calls: {operations}, {len(posted)} PostToConnection")

    first_content = []
    with connect(base_url.replace("http://", "ws://") + f"/ws?token={token}", open_timeout=30) as ws:
        for run in range(13):
            sent = time.perf_counter()
            ws.send(json.dumps({"action": "chat:send", "conversationId": room, "message": f"run {run}"}))
            seen_first = False
            while True:
                frame = json.loads(ws.recv(timeout=30))
                if frame["event"] != "chat:response":
                    continue
                if frame["data"]["type"] == "content" and not seen_first:
                    seen_first = True
                    if run >= 3:
                        first_content.append((time.perf_counter() - sent) * 1000)
                if frame["data"]["type"] == "end":
                    break
    print(f"  {'chat:send → first chat:response content':<40} {percentiles(first_content)}")


def _chat_over_http(
    base_url: str,
    calls: list[tuple[str, float]],
    *,
    email: str = "bench@example.com",
    answers: DynamoDBAnswers | None = None,
    cpu: list[float] | None = None,
    setup: Callable[[Any, dict[str, str]], dict[str, Any]] | None = None,
    ends: list[float] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[tuple[list[float], list[float]], list[str]]:
    """Register, then stream replies in one conversation over HTTP; time to the first content event and per later
    content event (first to last), and the DynamoDB calls the last reply made before its first content. `ends` gets
    each reply's end: from its last content to the stream's close (the reply stored, usage, the end event). `cpu`
    gets the CPU time the whole process spent before each first content (the work itself, however the shared
    machine schedules it).

    With `answers`, the warm-up replies after the one that starts the conversation are recorded, and every
    measured reply has its DynamoDB calls answered from those recordings. `extra` joins every request's body."""
    import json

    import httpx

    first, per_chunk = [], []
    with httpx.Client(base_url=base_url, timeout=60) as http:
        auth = _registered(http, email, setup)
        conversation = None
        for run in range(CHAT_RUNS + 3):
            if answers is not None:
                answers.mode = "record" if run in (1, 2) else "replay" if run >= 3 else "off"
                if answers.mode == "record":
                    from functions.chat.limits import forget_stage_spend

                    forget_stage_spend()  # the stage's spend, read every few seconds, is among the recorded reads
            body = {"message": f"run {run}", **(extra or {})} | (
                {"conversationId": conversation} if conversation else {}
            )
            calls.clear()
            started, cpu_started = time.perf_counter(), time.process_time()
            first_at = last_at = None
            chunks = 0
            with http.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json=body) as response:
                for line in response.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    if event["type"] == "start":
                        conversation = event["conversationId"]
                    elif event["type"] == "content":
                        chunks += 1
                        last_at = time.perf_counter()
                        if first_at is None:
                            first_at = last_at
                            if cpu is not None and run >= 3:
                                cpu.append((time.process_time() - cpu_started) * 1000)
            ended = time.perf_counter()
            if run < 3:  # the first runs warm the handlers up
                continue
            if first_at is None or last_at is None:
                raise SystemExit(f"bench: reply {run} streamed no content")
            first.append((first_at - started) * 1000)
            per_chunk.append((last_at - first_at) * 1000 / max(1, chunks - 1))
            (ends if ends is not None else []).append((ended - last_at) * 1000)
    if answers is not None:
        answers.mode = "off"
    before_first = [name for name, at in calls if first_at is not None and at < first_at]
    return (first, per_chunk), before_first


def _registered(http: Any, email: str, setup: Callable[[Any, dict[str, str]], dict[str, Any]] | None) -> dict[str, str]:
    """A new user's authorization header, after `setup` (given the client and the header) has run and the
    settings it answers are saved."""
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "bench password 123"}).json()
    auth = {"authorization": f"Bearer {token['accessToken']}"}
    if setup is not None:
        http.put("/api/v1/users/settings", headers=auth, json=setup(http, auth)).raise_for_status()
    return auth


_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


class DynamoDBAnswers:
    """DynamoDB's answers from memory: in `record` mode each DynamoDB request goes to moto and its raw answer is
    kept; in `replay` mode each is answered with a kept one and never leaves the process (`off`: moto, unrecorded).

    A request is matched on what selects the items it reads (operation, table, index, key or key condition), so
    a replayed reply reads exactly what the recorded ones read; a write, whose ids and times differ each reply,
    is matched on its operation and tables. A read nothing recorded matches (a cache's refresh that fell in no
    recorded reply) goes to moto, and is counted in `misses`.
    """

    def __init__(self) -> None:
        import threading

        self.mode = "off"
        self.answered = 0
        self.misses: list[str] = []
        self._by_selection: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self._by_operation: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self._next: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def answering(self) -> Iterator[None]:
        from botocore.endpoint import Endpoint

        send = Endpoint._send

        def answer(endpoint: Endpoint, request: Any) -> Any:
            target = request.headers.get("X-Amz-Target", b"")
            target = target.decode() if isinstance(target, bytes) else str(target)
            if self.mode == "off" or not target.startswith("DynamoDB_"):
                return send(endpoint, request)
            selection, operation = self._keys(target.rsplit(".", 1)[-1], request.body)
            if self.mode == "record":
                response = send(endpoint, request)
                kept = (response.status_code, dict(response.headers), response.content)
                with self._lock:
                    self._by_selection.setdefault(selection, []).append(kept)
                    self._by_operation.setdefault(operation, []).append(kept)
                return response
            replayed = self._replay(request.url, selection, operation)
            return send(endpoint, request) if replayed is None else replayed

        with patch.object(Endpoint, "_send", answer):
            yield

    def _replay(self, url: str, selection: str, operation: str) -> Any | None:
        import json

        from botocore.awsrequest import AWSResponse

        with self._lock:
            key, recorded = selection, self._by_selection.get(selection)
            if recorded is None and json.loads(operation)[0] in _WRITES:
                key, recorded = operation, self._by_operation.get(operation)
            if not recorded:
                self.misses.append(selection)
                return None
            status, headers, body = recorded[self._next[key] % len(recorded)]
            self._next[key] += 1
            self.answered += 1
        return AWSResponse(url, status, headers, _RecordedBody(body))

    @staticmethod
    def _keys(operation: str, body: bytes | str | None) -> tuple[str, str]:
        """What selects the request's items, and its operation and tables."""
        import json
        import re

        document = json.loads(body or "{}")
        selection = {name: document[name] for name in ("TableName", "IndexName", "Key") if name in document}
        condition = document.get("KeyConditionExpression")
        if condition:
            values = document.get("ExpressionAttributeValues", {})
            selection["KeyCondition"] = [condition, {n: values.get(n) for n in re.findall(r":\w+", condition)}]
        # Every table the request names: its own, a transaction's items' or a batch's.
        tables = set(re.findall(r'"TableName": "([^"]+)"', json.dumps(document)))
        tables |= set(document.get("RequestItems", {}))
        return json.dumps([operation, selection], sort_keys=True), json.dumps([operation, sorted(tables)])


class _RecordedBody:
    """The raw body botocore reads a response from (`AWSResponse.raw`)."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


async def _chat_direct(cpu: list[float]) -> tuple[list[float], list[float]]:
    from shared.llm.registry import providers
    from shared.llm.types import Message, ModelRequest, TextDelta

    provider = providers()["anthropic"]
    first, per_chunk = [], []
    for run in range(CHAT_RUNS + 3):
        request = ModelRequest(model="claude-opus-4-5", messages=(Message("user", f"run {run}"),))
        started, cpu_started = time.perf_counter(), time.process_time()
        first_at = last_at = None
        chunks = 0
        async for event in provider.stream(request):
            if isinstance(event, TextDelta):
                chunks += 1
                if first_at is None and run >= 3:
                    cpu.append((time.process_time() - cpu_started) * 1000)
                last_at = time.perf_counter()
                first_at = first_at or last_at
        if run >= 3 and first_at is not None and last_at is not None:
            first.append((first_at - started) * 1000)
            per_chunk.append((last_at - first_at) * 1000 / max(1, chunks - 1))
    return first, per_chunk


# The parts `make bench` runs each in a fresh interpreter (the local stack points every client at its own moto
# server): `python -m tests.bench <part>` runs one. "module:function" of each, beside chat's, which is above.
PARTS: dict[str, str] = {
    "jobs": "tests.bench.jobs:report_jobs",
    "agents": "tests.bench.agents:report_agents",
    "channels": "tests.bench.channels:report_channels",
    "vectors": "tests.bench.vectors:report_vectors",
    "webhooks": "tests.bench.webhooks:report_webhooks",
    "audit": "tests.bench.audit:report_audit",
    "analytics": "tests.bench.analytics:report_analytics",
}


def main() -> None:
    import importlib

    part = sys.argv[1] if len(sys.argv) == 2 else None
    if part == "chat":
        report_chat_overhead()
        return
    if part in PARTS:
        module, function = PARTS[part].split(":")
        getattr(importlib.import_module(module), function)()
        return
    env = bench_environment()
    print(f"Stratus bench: Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    report_imports(env)
    report_warm_latency(env)
    report_mcp()
    sys.stdout.flush()
    chat_env = {name: value for name, value in os.environ.items() if not name.endswith("_TABLE")}
    for name in ("chat", *PARTS):
        subprocess.run([sys.executable, "-m", "tests.bench", name], cwd=ROOT, env=chat_env, check=True)


if __name__ == "__main__":
    main()
