"""Credentials written once: token signing and verification, API keys, the principal they resolve to."""
