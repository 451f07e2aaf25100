"""The agents context: the stage's agents, their documents and knowledge (semantic search), and what chat uses."""

# Where documents' files live in the documents bucket: `documents/<agentId>/<documentId>`.
DOCUMENTS_PREFIX = "documents/"
