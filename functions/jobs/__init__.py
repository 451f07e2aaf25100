"""The jobs context: export, import, account deletion and archiving of a user's data."""
