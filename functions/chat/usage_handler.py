"""Lambda entry point of the usage routes."""

from functions.chat.usage_api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
