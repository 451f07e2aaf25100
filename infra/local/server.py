"""The `make dev` process: embedded AWS, then the gateway under uvicorn, until Ctrl-C or SIGTERM.

Start-up order matters: the environment must point at moto before any handler is imported, because the
handlers read their settings once, at import. Shutdown runs the other way: uvicorn stops taking requests
and drains, then moto stops. Either signal is a normal stop, exit code 0.

This module imports only the standard library at import time, so `python -m infra.local --help` is instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.local.aws import LocalAws
    from infra.local.gateway import Gateway

log = logging.getLogger("stratus.local")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local",
        description=(
            "Run Stratus locally: an embedded AWS (moto) with the stage's tables and signing keys, and every "
            "HTTP route of the catalog served through a local API Gateway that invokes the real Lambda handlers."
        ),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="port to serve the API on (default: $PORT or 8000; 0 picks a free one)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--moto-port", type=int, default=0, help="port of the embedded AWS (moto) it starts (default: a free one)"
    )
    parser.add_argument(
        "--attach-aws",
        metavar="ENDPOINT",
        help=(
            "start no AWS of its own: serve against the moto of another running local stack (e.g. "
            "http://127.0.0.1:5000), already provisioned, as a second container of the same stage"
        ),
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="the server's log level; handlers log at $POWERTOOLS_LOG_LEVEL (default WARNING)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _configure_logging(args.log_level)
    # Powertools warns on every invocation that records no metric; in local mode that is only noise.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # Until uvicorn installs its own handlers, a SIGTERM stops start-up the way Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    local_aws = None
    abandoned = 0
    try:
        from infra.local.aws import attach_local_aws, start_local_aws

        if args.attach_aws:
            local_aws = attach_local_aws(args.attach_aws, "local")
        else:
            local_aws = start_local_aws("local", port=args.moto_port)
        code, abandoned = _serve(args, local_aws)
    except KeyboardInterrupt:
        code = 0
    finally:
        # Ctrl-C reaches this process more than once when a wrapper (make, uv run) passes it on too; the
        # shutdown already under way is the answer to all of them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if local_aws is not None:
            local_aws.stop()
    if abandoned:
        # A handler stuck past its timeout holds a pool thread that would keep the interpreter from exiting.
        log.warning("abandoning %d invocation(s) still running", abandoned)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def build_gateway() -> Gateway:
    """The local API Gateway for the whole catalog: HTTP routes, the streaming chat app, the WebSocket API.

    The handlers post to connections and invoke the worker through this gateway once it listens (`LocalServer`
    points `WEBSOCKET_MANAGEMENT_URL` and `AWS_ENDPOINT_URL_LAMBDA` at it), and so do the jobs workflows' tasks.
    """
    from infra.catalog import (
        AGENTS_PROCESSOR_FUNCTION,
        AUTHORIZER_FUNCTION,
        HTTP_FUNCTIONS,
        JOB_TASK_FUNCTIONS,
        STREAMING_FUNCTIONS,
        WEBSOCKET_ACTIONS,
        WEBSOCKET_AUTHORIZER_FUNCTION,
        WEBSOCKET_FUNCTIONS,
        WEBSOCKET_HANDLER_FUNCTION,
        WEBSOCKET_LOCAL_PATH,
        WEBSOCKET_WORKER_FUNCTION,
        all_routes,
    )
    from infra.local.gateway import Gateway, WebSocketOptions
    from infra.local.openapi import ApiDocs

    os.environ["WORKER_FUNCTION"] = f"stratus-{os.environ['STAGE']}-{WEBSOCKET_WORKER_FUNCTION.name}"
    return Gateway(
        all_routes(),
        authorizer=AUTHORIZER_FUNCTION,
        stage=os.environ["STAGE"],
        region=os.environ["AWS_REGION"],
        docs=ApiDocs((*HTTP_FUNCTIONS, *STREAMING_FUNCTIONS)),
        streaming=STREAMING_FUNCTIONS,
        websocket=WebSocketOptions(
            authorizer=WEBSOCKET_AUTHORIZER_FUNCTION,
            handler=WEBSOCKET_HANDLER_FUNCTION,
            actions=WEBSOCKET_ACTIONS,
            invocable=(*WEBSOCKET_FUNCTIONS, *JOB_TASK_FUNCTIONS, AGENTS_PROCESSOR_FUNCTION),
            path=WEBSOCKET_LOCAL_PATH,
        ),
    )


def _serve(args: argparse.Namespace, local_aws: LocalAws) -> tuple[int, int]:
    """Serve until told to stop; the exit code and how many invocations were still running."""
    import uvicorn

    from infra.local.uvicorn_server import LocalServer

    gateway = build_gateway()
    config = uvicorn.Config(
        gateway,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        server_header=False,  # API Gateway sends no `server` header
        timeout_graceful_shutdown=5,
    )
    server = LocalServer(config, moto_endpoint=local_aws.endpoint_url, on_listening=local_aws.forward_invocations_to)
    if args.port:
        # Channels' webhook URLs name the gateway, as a deployed stage's name its HTTP API.
        os.environ.setdefault("PUBLIC_API_URL", f"http://{args.host}:{args.port}/api/v1")
    from infra.local.gateway import import_handler
    from infra.local.queues import catalog_pollers

    # The SQS event sources: the queue workers run in this process, on moto's queues.
    pollers = [poller.start() for poller in catalog_pollers(import_handler)]
    try:
        server.run()
    finally:
        for poller in pollers:
            poller.stop()
    return (0 if server.started else 1), gateway.running_invocations


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     [local] %(message)s"))
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
