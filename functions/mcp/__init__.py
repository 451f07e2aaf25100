"""The mcp context: the MCP server registry, its live routes, and the servers chat's tool runner connects to."""
