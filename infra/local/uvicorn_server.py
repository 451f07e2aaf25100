"""uvicorn's server, adjusted for local mode: a signal means "stop cleanly", and the URLs are printed once
the socket is bound (so `--port 0` prints the port it got)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class LocalServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        *,
        moto_endpoint: str,
        on_listening: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.moto_endpoint = moto_endpoint
        # Told the bound URL once the socket listens (moto's workflows send their Lambda tasks there).
        self.on_listening = on_listening

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a captured signal once it has shut down, which would end the process with a
        # KeyboardInterrupt traceback, or die of SIGTERM before moto stops. Here a signal only asks to stop;
        # a second Ctrl-C still forces the exit (uvicorn's handle_exit).
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # The WebSocket handlers' boto3 calls (`@connections`, the worker's `Invoke`) come back here; the
            # bound port is only known now (`--port 0`), and handlers read these when they make their clients.
            os.environ["WEBSOCKET_MANAGEMENT_URL"] = self.bound_url()
            os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self.bound_url()
            if self.on_listening is not None:
                self.on_listening(self.bound_url())
            print_banner(self.bound_url(), self.moto_endpoint)

    def bound_url(self) -> str:
        host, port = self.config.host, self.config.port
        for server in self.servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - only naming a URL to print
            host = "127.0.0.1"
        return f"http://{host}:{port}"


def print_banner(base_url: str, moto_endpoint: str) -> None:
    lines = [
        "",
        "Stratus is running locally (stage 'local'; Ctrl-C stops it)",
        f"  API        {base_url}/api/v1",
        f"  docs       {base_url}/docs",
        f"  OpenAPI    {base_url}/openapi.json",
        f"  health     {base_url}/api/v1/health",
        f"  WebSocket  {base_url.replace('http://', 'ws://', 1)}/ws?token=<access token>",
        f"  AWS (moto) {moto_endpoint}",
        "",
    ]
    print("\n".join(lines), flush=True)
