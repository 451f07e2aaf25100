"""The local stack as `make dev` runs it, in the bench's own process, so the handlers' calls can be counted."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def running_local_stack(stage: str) -> Iterator[str]:
    """moto in its own process, the local gateway under uvicorn on a free port in a thread of this process; yields
    the gateway's base URL. Call it before importing any handler: they read their settings once, at import."""
    import uvicorn

    from infra.local.aws import start_local_aws

    with start_local_aws(stage) as local_aws:
        from infra.local.server import build_gateway

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        gateway = build_gateway()
        server = uvicorn.Server(uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base_url = f"http://127.0.0.1:{port}"
        # As `make dev` does once it listens: the handlers reach @connections and Invoke through the gateway, and
        # the workflows' Lambda tasks come to it too.
        os.environ.update(WEBSOCKET_MANAGEMENT_URL=base_url, AWS_ENDPOINT_URL_LAMBDA=base_url)
        local_aws.forward_invocations_to(base_url)
        try:
            yield base_url
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            gateway.close()
