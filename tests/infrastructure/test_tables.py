"""DynamoDB: every table in `shared.tables` is deployed exactly as local mode creates it, and tenant data survives."""

from __future__ import annotations

import pytest

from shared.tables import TABLES, TableSpec
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infra


def _by_name(items: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(items, key=lambda item: item["AttributeName"])


def test_the_stack_deploys_exactly_the_catalog_tables(synth: Synthesized) -> None:
    deployed = {table["Properties"]["TableName"] for table in synth.of_type("AWS::DynamoDB::Table").values()}

    assert deployed == {spec.physical_name(synth.stage) for spec in TABLES}


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.context)
def test_table_has_the_keys_and_indexes_local_mode_creates(synth: Synthesized, spec: TableSpec) -> None:
    table = synth.resources[synth.table_id(spec)]["Properties"]
    local = spec.create_table_request(spec.physical_name(synth.stage))

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == local["KeySchema"]
    assert _by_name(table["AttributeDefinitions"]) == _by_name(local["AttributeDefinitions"])
    assert table.get("GlobalSecondaryIndexes", []) == local.get("GlobalSecondaryIndexes", [])


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.context)
def test_table_expires_items_by_the_spec_ttl_attribute(synth: Synthesized, spec: TableSpec) -> None:
    ttl = synth.resources[synth.table_id(spec)]["Properties"].get("TimeToLiveSpecification")

    if spec.ttl_attribute:
        assert ttl == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert ttl is None


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.context)
def test_table_is_recoverable_and_encrypted_at_rest(synth: Synthesized, spec: TableSpec) -> None:
    table = synth.resources[synth.table_id(spec)]["Properties"]

    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.context)
def test_tenant_tables_survive_deletion_and_dev_tables_do_not(
    dev: Synthesized, acme: Synthesized, spec: TableSpec
) -> None:
    tenant = acme.resources[acme.table_id(spec)]
    disposable = dev.resources[dev.table_id(spec)]

    assert tenant["Properties"]["DeletionProtectionEnabled"] is True
    assert tenant["DeletionPolicy"] == tenant["UpdateReplacePolicy"] == "Retain"
    assert disposable["Properties"]["DeletionProtectionEnabled"] is False
    assert disposable["DeletionPolicy"] == "Delete"


def test_tenant_signing_keys_survive_deletion(acme: Synthesized) -> None:
    assert acme.resources[acme.signing_secret_id]["DeletionPolicy"] == "Retain"
