"""Lambda entry point of the agents context."""

from functions.agents.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
