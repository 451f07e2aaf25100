"""The embedded AWS of local mode: what it creates, and that stopping it restores the environment."""

from __future__ import annotations

import json
import os

from infra.local.aws import start_local_aws
from shared.tables import TABLES


def test_creates_tables_and_signing_keys_then_restores_the_environment() -> None:
    before = dict(os.environ)
    with start_local_aws("unit") as aws:
        from shared.aws import client

        assert os.environ["AWS_ENDPOINT_URL"] == aws.endpoint_url
        assert os.environ["MOTO_PORT"] == str(aws.port)
        assert os.environ["STAGE"] == "unit"
        names = client("dynamodb").list_tables()["TableNames"]
        assert sorted(names) == sorted(spec.physical_name("unit") for spec in TABLES)
        for spec in TABLES:
            assert os.environ[spec.env_var] == spec.physical_name("unit")
        secret = client("secretsmanager").get_secret_value(SecretId=os.environ["SIGNING_KEYS_SECRET"])
        assert json.loads(secret["SecretString"])["keys"][0]["kid"]
    assert dict(os.environ) == before


def test_can_start_again_after_a_stop() -> None:
    for _ in range(2):
        with start_local_aws("unit") as aws:
            from shared.aws import client

            assert client("dynamodb").list_tables()["TableNames"]
            assert aws.port
