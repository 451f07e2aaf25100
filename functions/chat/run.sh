#!/bin/sh
# The chat function's entry point under the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap): the
# adapter forwards each invocation to this server and streams its response back (AWS_LWA_INVOKE_MODE).
export PYTHONPATH="/opt/python:/var/task:${PYTHONPATH:-}"
exec python3 -m uvicorn functions.chat.api:app --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" --no-access-log
