"""Things that must agree with their one source of truth: storage models with the table spec, the deployed
routes with the apps that serve them, the layers with the lock file."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infra.catalog import HTTP_FUNCTIONS, STREAMING_FUNCTIONS, FunctionSpec
from shared.tables import IDENTITY

ROOT = Path(__file__).resolve().parents[2]


def test_identity_records_use_the_identity_table_keys_and_index() -> None:
    from functions.identity import store

    records = [
        store.UserRecord, store.EmailRecord, store.SessionRecord, store.ApiKeyRecord,
        store.RoleRecord, store.LoginFailureRecord, store.ResetTokenRecord, store.StageRecord,
    ]  # fmt: skip
    for record in records:
        assert record.Meta.table_name == IDENTITY.name_from_env()
        assert record._hash_keyname == IDENTITY.partition_key
        assert record._range_keyname == IDENTITY.sort_key
        for index in record._indexes.values():
            spec = next(i for i in IDENTITY.indexes if i.name == index.Meta.index_name)
            schema = index._get_schema()
            assert [k["AttributeName"] for k in schema["key_schema"]] == [spec.partition_key, spec.sort_key]


@pytest.mark.parametrize("spec", [*HTTP_FUNCTIONS, *STREAMING_FUNCTIONS], ids=lambda spec: spec.name)
def test_catalog_routes_are_exactly_the_routes_the_app_serves(spec: FunctionSpec) -> None:
    assert spec.app is not None
    module_name, attribute = spec.app.split(":")
    app = getattr(importlib.import_module(module_name), attribute)
    served = {(method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations}
    assert served == {(route.method, route.path) for route in spec.routes if route.documented}
    # A route whose contract is another API's is served without being documented.
    client = TestClient(app)
    for route in spec.routes:
        if not route.documented:
            answer = client.request(route.method, route.path)
            assert answer.status_code != 405, route
            assert "Route not found" not in answer.text, route


def test_every_route_key_is_served_by_one_function_only() -> None:
    keys = [route.route_key for spec in (*HTTP_FUNCTIONS, *STREAMING_FUNCTIONS) for route in spec.routes]
    assert len(keys) == len(set(keys))


def test_layer_requirements_match_the_lock() -> None:
    from layers.export_requirements import requirements

    for name, content in requirements().items():
        assert (ROOT / "layers" / name / "requirements.txt").read_text() == content, "run layers/export_requirements.py"


def test_each_layer_with_those_beneath_it_holds_every_package_of_its_dependency_group() -> None:
    from layers.export_requirements import STACKED_LAYERS, exported, package_names, requirements

    layers = requirements()
    for layer, group, beneath in STACKED_LAYERS:
        shipped = set().union(*(package_names(layers[name]) for name in (*beneath, layer)))
        assert package_names(exported(group)) <= shipped, layer


def test_a_function_that_stacks_a_layer_also_stacks_the_layers_it_is_built_on() -> None:
    from infra import catalog
    from layers.export_requirements import STACKED_LAYERS

    beneath = {layer: below for layer, _, below in STACKED_LAYERS}
    specs = {
        spec.name: spec
        for value in vars(catalog).values()
        for spec in (value if isinstance(value, tuple) else (value,))
        if isinstance(spec, FunctionSpec)
    }
    for spec in specs.values():
        for layer in spec.layers:
            assert set(beneath.get(layer, ())) <= set(spec.layers), f"{spec.name}: {layer} needs {beneath[layer]}"


def test_every_stdio_server_the_stage_allows_by_default_ships_in_the_mcp_servers_layer() -> None:
    from shared.settings import DEFAULT_MCP_STDIO_ALLOWED

    shipped = (ROOT / "layers" / "mcp-servers" / "requirements.txt").read_text()
    for argv in DEFAULT_MCP_STDIO_ALLOWED:
        assert argv[:2] == ("python", "-m"), "a default stdio server runs on the function's own interpreter"
        distribution = argv[2].replace("_", "-")
        assert f"\n{distribution}==" in f"\n{shipped}", f"{distribution} is not in layers/mcp-servers"
