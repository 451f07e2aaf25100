"""Write each layer's requirements.txt from the lock file: `python layers/export_requirements.py`.

The base layer holds the runtime dependencies; the AI layer holds the provider SDKs and only what they need beyond
the base layer; the mcp-servers layer the stdio MCP servers a stage allows by default, and only what they need beyond
the other two: Lambda unpacks every layer of a function into the same folder.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PINNED = re.compile(r"^([A-Za-z0-9_.-]+)==")


def exported(*groups: str) -> str:
    selection = [argument for group in groups for argument in ("--only-group", group)] or ["--no-default-groups"]
    # uv is a dev dependency: the venv's interpreter runs it, whatever is (or is not) on PATH.
    command = [
        sys.executable,
        "-m",
        "uv",
        "export",
        "--frozen",
        *selection,
        "--no-hashes",
        "--no-emit-project",
        "--no-header",
        "-q",
    ]
    return subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout  # noqa: S603 - our own argv


# Each layer on top of the ones before it: (layer, dependency group), in the order a function stacks them.
STACKED_LAYERS = (("ai", "ai"), ("mcp-servers", "mcp-servers"))


def _names(requirements: str) -> set[str]:
    return {match.group(1).lower() for line in requirements.splitlines() if (match := _PINNED.match(line))}


def requirements() -> dict[str, str]:
    """Each layer's requirements.txt content, by layer name."""
    base = exported()
    layers, below = {"base": base}, _names(base)
    for layer, group in STACKED_LAYERS:
        lines = [
            line
            for line in exported(group).splitlines()
            if (match := _PINNED.match(line)) and match.group(1).lower() not in below
        ]
        layers[layer] = "\n".join(lines) + "\n"
        below |= _names(layers[layer])
    return layers


if __name__ == "__main__":
    for name, content in requirements().items():
        (ROOT / "layers" / name / "requirements.txt").write_text(content)
        print(f"layers/{name}/requirements.txt")
