"""Lambda entry point of the platforms' webhooks."""

from functions.channels.webhooks import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
