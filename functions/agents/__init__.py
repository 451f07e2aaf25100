"""Agents and their knowledge: documents, processing, semantic search, grounding for chat."""

# Where documents' files live in the documents bucket: `documents/<agentId>/<documentId>`.
DOCUMENTS_PREFIX = "documents/"
