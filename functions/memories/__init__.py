"""The memories context: long-term facts, preferences and instructions a user keeps for their prompts."""
