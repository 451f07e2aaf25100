"""A stdio MCP server that misbehaves on request: it hangs, floods its output, reports its own environment, and
says its tool list changed."""

from __future__ import annotations

import os
import time

from mcp.server import MCPServer
from mcp.server.mcpserver import Context

server = MCPServer("misbehaving")


@server.tool()
def hang(seconds: float) -> str:
    """Block for `seconds` before answering."""
    time.sleep(seconds)
    return "done"


@server.tool()
def flood(megabytes: int) -> str:
    """Answer `megabytes` MB of text."""
    return "x" * (megabytes * 1024 * 1024)


@server.tool()
def environment() -> list[str]:
    """The names of the variables in this process's environment."""
    return sorted(os.environ)


@server.tool()
def pid() -> int:
    return os.getpid()


@server.tool()
async def announce_tools_changed(ctx: Context) -> str:
    """Tell the client this server's tool list changed (to its `subscriptions/listen` stream), then answer."""
    await ctx.notify_tools_changed()
    return "announced"


if __name__ == "__main__":
    time.sleep(float(os.environ.get("STARTUP_DELAY_SECONDS", "0")))
    server.run("stdio")
