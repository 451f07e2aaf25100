"""Chat: replies from LLM providers with failover and streaming, usage and cost records, rate limits."""
