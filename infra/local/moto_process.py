"""The embedded AWS of local mode in a process of its own, so moto's work never competes with the API's for the
interpreter lock: `python -m infra.local.moto_process --port 0` prints `ready <port>` and serves until stopped.

Step Functions executions really run here; their Lambda tasks, and the documents bucket's notifications to the
document processor, go to the endpoint a `lambda-endpoint <url>` line on stdin names (the local gateway's Invoke
API, sent once it listens).

It ends with its parent (Linux), so a local stack killed outright leaves no moto server behind.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.local.stepfunctions import InvocationForwarder

_PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the parent's stop() still ends this process
        return
    if os.getppid() == 1:  # the parent died before the call above
        sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="moto server for the Stratus local stack")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    _end_with_parent()

    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    from infra.local.moto_patches import patch_moto
    from infra.local.s3events import deliver_s3_notifications, post_to_gateway
    from infra.local.stepfunctions import InvocationForwarder

    patch_moto()
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    forwarder = InvocationForwarder()
    forwarder.install()
    # Documents landing in the documents bucket reach the processor through the same gateway.
    deliver_s3_notifications(post_to_gateway(lambda: forwarder.endpoint))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    port = server.get_host_and_port()[1]
    # moto's executor reads it when it makes a client for a task's service.
    os.environ["MOTO_PORT"] = str(port)
    threading.Thread(target=_read_commands, args=(forwarder, stopped), daemon=True).start()
    print(f"ready {port}", flush=True)
    stopped.wait()
    server.stop()
    return 0


def _read_commands(forwarder: InvocationForwarder, stopped: threading.Event) -> None:
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "lambda-endpoint" and value:
            forwarder.forward_to(value)
    # stdin closed: the parent is gone or stopping.
    stopped.set()


if __name__ == "__main__":
    sys.exit(main())
