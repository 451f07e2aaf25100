"""Lambda entry point of the health context."""

from functions.health.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
