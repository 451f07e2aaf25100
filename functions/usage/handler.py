"""Lambda entry point of the usage context."""

from functions.usage.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
