"""The HTTP side every buffered context shares: the FastAPI app factory, models, dependencies, the handler."""
