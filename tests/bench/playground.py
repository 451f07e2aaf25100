"""`make bench` (playground): a comparison of three models of different speeds, over real HTTP on the local stack,
beside each model's reply alone through the chat stream. The models run at once, so the comparison should take
about as long as the slowest alone, not the sum of the three.

The fake provider is the bench's own (in this process): each model is given a reply of the same words at its own
pace (`ScriptedServer.for_model`), queued again before every run.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from tests.fakes.scripted import Reply, ScriptedServer

RUNS = 5
WORDS = 25
# Seconds between words: the three models' speeds (multiples of the fake's 20 ms sleep step, so each is exact).
PACES = {"claude-haiku-4-5": 0.02, "claude-sonnet-4-6": 0.04, "claude-opus-4-5": 0.08}


def _reply(pace: float) -> Reply:
    return Reply(" ".join(f"word{n}" for n in range(WORDS)), input_tokens=50, chunk_delay=pace)


def _comparison_ms(http: Any, auth: dict[str, str], fake: ScriptedServer) -> float:
    for model, pace in PACES.items():
        fake.for_model(model, _reply(pace))
    body = {"prompt": "Compare yourselves", "models": list(PACES)}
    started = time.perf_counter()
    done = 0
    with http.stream("POST", "/api/v1/ai/playground", headers=auth, json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                done += event["type"] == "status" and event["status"] == "done"
    if done != len(PACES):
        raise SystemExit(f"bench: a comparison ended with {done} of {len(PACES)} models done")
    return (time.perf_counter() - started) * 1000


def _alone_ms(http: Any, auth: dict[str, str], fake: ScriptedServer, model: str) -> float:
    fake.for_model(model, _reply(PACES[model]))
    started = time.perf_counter()
    with http.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json={"message": "hi", "model": model}) as r:
        ended = any(line.startswith("data: ") and json.loads(line[6:])["type"] == "end" for line in r.iter_lines())
    if not ended:
        raise SystemExit(f"bench: {model} alone never ended")
    return (time.perf_counter() - started) * 1000


def report_playground(base_url: str, fake: ScriptedServer) -> None:
    """`fake` is the Anthropic-compatible fake the stack at `base_url` calls."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=60) as http:
        token = http.post(
            "/api/v1/auth/register", json={"email": "playground@example.com", "password": "bench password 123"}
        ).json()
        auth = {"authorization": f"Bearer {token['accessToken']}"}
        _comparison_ms(http, auth, fake)  # warm-up
        comparison = [_comparison_ms(http, auth, fake) for _ in range(RUNS)]
        alone = {model: [_alone_ms(http, auth, fake, model) for _ in range(RUNS)] for model in PACES}
    slowest = max(PACES, key=PACES.__getitem__)
    summed = sum(statistics.median(times) for times in alone.values())
    print(f"\nPlayground on the local stack ({RUNS} runs, {WORDS} words a reply, fake Anthropic, p50)")
    print(f"  {'comparison of three models':<40} {statistics.median(comparison):.0f} ms")
    for model, times in alone.items():
        print(f"  {model + ' alone (' + format(PACES[model] * 1000, 'g') + ' ms a word)':<40} "
              f"{statistics.median(times):.0f} ms")  # fmt: skip
    ratio = statistics.median(comparison) / statistics.median(alone[slowest])
    print(f"  {'comparison / slowest alone':<40} {ratio:.2f}   (goal ≈ 1; the sum of the three alone: {summed:.0f} ms)")
