"""Cold start is import time: a function's entry point loads none of the heavy modules only some paths need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.catalog import HTTP_FUNCTIONS, STREAMING_FUNCTIONS, FunctionSpec

ROOT = Path(__file__).resolve().parents[2]
# Loaded only by the paths that use them: provider SDKs and MCP on a model or tool call, the compatible APIs' models
# on their first request, the document readers and numpy in document processing, pydantic.v1 never.
HEAVY = (
    "anthropic",
    "openai",
    "mcp",
    "pypdf",
    "docx",
    "numpy",
    "pydantic.v1",
    "functions.chat.compat.openai_models",
    "functions.chat.compat.anthropic_models",
)


def entry_module(spec: FunctionSpec) -> str:
    """What the function's init imports: its handler's module, or its ASGI app's for a streaming function."""
    if spec.streaming:
        assert spec.app is not None
        return spec.app.partition(":")[0]
    return spec.handler.rpartition(".")[0]


@pytest.mark.parametrize("spec", [*HTTP_FUNCTIONS, *STREAMING_FUNCTIONS], ids=lambda spec: spec.name)
def test_a_function_starts_without_the_heavy_modules(spec: FunctionSpec) -> None:
    probe = f"import sys, {entry_module(spec)}; print(' '.join(name for name in {HEAVY!r} if name in sys.modules))"
    environment = {"PATH": "/usr/bin:/bin", "STAGE": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, env=environment
    )

    assert result.stdout.strip() == ""
