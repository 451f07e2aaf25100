"""Lambda entry point of the webhooks context's routes."""

from functions.webhooks.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
