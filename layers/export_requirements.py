"""Write each layer's requirements.txt from the lock file: `python layers/export_requirements.py`.

The base layer holds the runtime dependencies; the AI layer holds the provider SDKs and only what they need beyond
the base layer; the mcp-servers layer the stdio MCP servers a stage allows by default, and the documents layer the
readers of an agent's documents (pypdf, python-docx), each only what it needs beyond the layers it is stacked on
(base and AI): Lambda unpacks every layer of a function into the same folder. Two layers never stacked together may
both hold a package (lxml is in mcp-servers and in documents).
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


# Each layer on top of the ones a function stacks beneath it: (layer, dependency group, layers beneath).
STACKED_LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ai", "ai", ("base",)),
    ("mcp-servers", "mcp-servers", ("base", "ai")),
    ("documents", "documents", ("base", "ai")),
)


def package_names(requirements: str) -> set[str]:
    """The (lowercased) names of the packages a requirements text pins."""
    return {match.group(1).lower() for line in requirements.splitlines() if (match := _PINNED.match(line))}


def requirements() -> dict[str, str]:
    """Each layer's requirements.txt content, by layer name."""
    layers = {"base": exported()}
    for layer, group, beneath in STACKED_LAYERS:
        below = {name for lower in beneath for name in package_names(layers[lower])}
        lines = [
            line
            for line in exported(group).splitlines()
            if (match := _PINNED.match(line)) and match.group(1).lower() not in below
        ]
        layers[layer] = "\n".join(lines) + "\n"
    return layers


if __name__ == "__main__":
    for name, content in requirements().items():
        (ROOT / "layers" / name / "requirements.txt").write_text(content)
        print(f"layers/{name}/requirements.txt")
