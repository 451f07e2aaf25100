"""Local fakes of the LLM providers, speaking each one's real wire format, for tests and the bench."""
