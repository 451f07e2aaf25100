"""Lambda entry points of the channels context: its API, and the platforms' webhooks (the worker is
functions.channels.worker)."""

from functions.channels.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
