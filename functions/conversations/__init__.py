"""Conversations: conversations and their messages, projects that group and share them, saved prompts."""
