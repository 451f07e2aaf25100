"""Chat: replies from LLM providers with failover and streaming, their cost, and rate limits; what each reply used
is recorded through the usage context."""
