"""What a browser on an allowed origin may send and read, in one place: the functions' CORS middleware, the HTTP
API's and the Function URLs' CORS configurations (CDK) and the local gateway's preflights all use these lists.

Beside Stratus's own headers: `Last-Event-ID` (resuming a stream), and what the OpenAI and Anthropic SDKs send
from a browser to the compatible APIs (`x-api-key`, `anthropic-*`, their `x-stainless-*` client headers)."""

ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "x-request-id",
    "last-event-id",
    "x-stratus-conversation",
    "x-stratus-memories",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "x-stainless-arch",
    "x-stainless-helper",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-read-timeout",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
)
EXPOSED_HEADERS = ("x-request-id", "retry-after", "x-stratus-conversation")
MAX_AGE_SECONDS = 600
