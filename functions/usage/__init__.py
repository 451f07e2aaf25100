"""Usage: what every reply used (tokens, cost, latency), by day and by model, and the user's dashboard."""
