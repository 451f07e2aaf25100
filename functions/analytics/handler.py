"""Lambda entry point of the analytics context."""

from functions.analytics.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
