"""Lambda entry point of the jobs context's routes."""

from functions.jobs.api import app
from shared.http.handler import lambda_handler_for

lambda_handler = lambda_handler_for(app)
