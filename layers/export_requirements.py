"""Write each layer's requirements.txt from the lock file: `python layers/export_requirements.py`.

The base layer holds the runtime dependencies; the AI layer holds the provider SDKs and only what they need beyond
the base layer, since Lambda unpacks every layer of a function into the same folder.
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


def requirements() -> dict[str, str]:
    """Each layer's requirements.txt content, by layer name."""
    base = exported()
    in_base = {match.group(1).lower() for line in base.splitlines() if (match := _PINNED.match(line))}
    ai_lines = [
        line
        for line in exported("ai").splitlines()
        if (match := _PINNED.match(line)) and match.group(1).lower() not in in_base
    ]
    return {"base": base, "ai": "\n".join(ai_lines) + "\n"}


if __name__ == "__main__":
    for name, content in requirements().items():
        (ROOT / "layers" / name / "requirements.txt").write_text(content)
        print(f"layers/{name}/requirements.txt")
