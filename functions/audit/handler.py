"""Lambda entry point of the audit context."""

from functions.audit.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
