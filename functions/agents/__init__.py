"""Agents and their knowledge: documents, processing, semantic search, grounding for chat."""
