"""Lambda entry point of the mcp context."""

from functions.mcp.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
