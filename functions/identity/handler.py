"""Lambda entry point of the identity context."""

from functions.identity.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
