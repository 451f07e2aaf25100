"""Lambda entry point of the memories context."""

from functions.memories.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
