"""The OpenAI-compatible API's time to the first token and per chunk over real HTTP, measured as chat's are (its
`data:` lines read as they arrive), so the two paths compare in one run."""

from __future__ import annotations

import json
import time


def openai_api_over_http(
    base_url: str, runs: int, email: str = "compatible@example.com"
) -> tuple[list[float], list[float]]:
    """Register, then stream `runs` completions (after three that warm up) from `POST /v1/chat/completions` with the
    user's access token as the key; time to the first content chunk and per later chunk, in ms."""
    import httpx

    from tests.bench.__main__ import _registered

    first, per_chunk = [], []
    with httpx.Client(base_url=base_url, timeout=60) as http:
        auth = _registered(http, email, None)
        for run in range(runs + 3):
            body = {"model": "stratus-auto", "stream": True, "messages": [{"role": "user", "content": f"run {run}"}]}
            started = time.perf_counter()
            first_at = last_at = None
            chunks = 0
            with http.stream("POST", "/v1/chat/completions", headers=auth, json=body) as response:
                for line in response.iter_lines():
                    if not line.startswith("data: {"):
                        continue
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        chunks += 1
                        last_at = time.perf_counter()
                        first_at = first_at or last_at
            if first_at is None or last_at is None:
                raise SystemExit(f"bench: completion {run} streamed no content")
            if run >= 3:  # the first runs warm the handlers up
                first.append((first_at - started) * 1000)
                per_chunk.append((last_at - first_at) * 1000 / max(1, chunks - 1))
    return first, per_chunk
