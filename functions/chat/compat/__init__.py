"""The OpenAI- and Anthropic-compatible APIs: each wire format translated, in one module per API, to the
provider-neutral request the one reply generator serves, and its typed events back to that API's own chunks, events,
bodies and errors."""
