"""One stage of Stratus in AWS, one construct per concern: storage (tables, buckets, secrets), the functions built
from their specs, the jobs workflows, the HTTP API, the streaming functions and the WebSocket API.

Everything is built from the two catalogs (`shared.tables` and `infra.catalog`), so a table, route or
permission exists here exactly when the catalog says so; local mode serves the same catalogs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.functions import Functions
from infra.http_api import HttpApi
from infra.jobs import Jobs
from infra.knowledge import Knowledge
from infra.queue_workers import QueueWorkers
from infra.stage import ConfigurationError, StageConfig
from infra.storage import Storage
from infra.streaming import StreamingFunctions
from infra.websocket_api import WebSocketApi


class StratusStack(Stack):
    """Stratus for one stage (one tenant), configured by the CDK context `StageConfig` reads."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        layer_dirs: Mapping[str, Path],
        **kwargs: Any,
    ) -> None:
        # Checked before the stack exists, so a bad stage fails with our message, not a naming error.
        config = StageConfig.from_context(scope, stage)
        if "base" not in layer_dirs:
            raise ConfigurationError("the base layer is required: run `make layers`")
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.storage = Storage(self, "Storage", config)
        self.functions = Functions(self, "Functions", config, self.storage, layer_dirs)
        # Before the APIs: the functions that start workflows need their state machines.
        self.jobs = Jobs(self, "Jobs", config, self.functions)
        self.http_api = HttpApi(self, "Http", config, self.functions)
        self.knowledge = Knowledge(self, "Knowledge", config, self.functions, self.http_api.functions["agents"])
        self.streaming = StreamingFunctions(self, "Streaming", config, self.functions)
        self.websocket_api = WebSocketApi(self, "WebSocket", config, self.functions)
        self.queue_workers = QueueWorkers(self, "QueueWorkers", config, self.functions)
