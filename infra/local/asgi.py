"""What the local HTTP and WebSocket stand-ins both read from an ASGI request."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import Scope


def scope_header(scope: Scope, name: str) -> str | None:
    """A request header of an ASGI scope (the first, when repeated)."""
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return str(value.decode("latin-1"))
    return None
