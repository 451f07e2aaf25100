"""Puts the stage's first signing key into its secret: the CloudFormation custom resource in AWS, a start-up
step in local mode and tests. Running it again leaves an existing key ring alone."""

from __future__ import annotations

import json
from typing import Any

from shared.auth.keys import new_key_entry, parse_key_ring
from shared.observability import logger


def ensure_signing_keys(secret_id: str) -> bool:
    """Give `secret_id` a key ring unless it already holds one; True when a key was created."""
    from shared.aws import client

    secrets = client("secretsmanager")
    current = secrets.get_secret_value(SecretId=secret_id).get("SecretString", "")
    try:
        parse_key_ring(current)
    except (ValueError, KeyError, TypeError):
        # CloudFormation creates the secret with a random placeholder; replace it with a real key ring.
        secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps({"keys": [new_key_entry()]}))
        return True
    return False


def on_event(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Custom resource handler (CDK Provider framework): Create and Update ensure a key; Delete keeps nothing."""
    secret_id = event["ResourceProperties"]["SecretId"]
    if event["RequestType"] in ("Create", "Update"):
        created = ensure_signing_keys(secret_id)
        logger.info("signing keys ensured", extra={"created": created})
    return {"PhysicalResourceId": f"signing-keys:{secret_id}"}
