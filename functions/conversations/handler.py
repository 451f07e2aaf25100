"""Lambda entry point of the conversations context."""

from functions.conversations.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
