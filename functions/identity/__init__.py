"""Identity: accounts, sessions, profiles and settings, API keys, users and roles."""
