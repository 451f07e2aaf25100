"""The app refuses to synthesize a stage it cannot deploy safely, and says what to do instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App

from infra.app import built_layers
from infra.stack import StratusStack
from infra.stage import ConfigurationError, deployment_settings, enhance_field_types_environment

pytestmark = pytest.mark.infra


def _layer(root: Path, name: str, *, built: bool) -> None:
    (root / "layers" / name).mkdir(parents=True)
    (root / "layers" / name / "requirements.txt").write_text("pyjwt\n")
    if built:
        (root / "layers" / name / "build" / "python").mkdir(parents=True)


def test_built_layers_are_found_by_their_requirements(tmp_path: Path) -> None:
    _layer(tmp_path, "base", built=True)
    _layer(tmp_path, "ai", built=True)

    assert built_layers(tmp_path) == {
        "ai": tmp_path / "layers" / "ai" / "build",
        "base": tmp_path / "layers" / "base" / "build",
    }


def test_an_unbuilt_layer_asks_for_make_layers(tmp_path: Path) -> None:
    _layer(tmp_path, "base", built=True)
    _layer(tmp_path, "ai", built=False)

    with pytest.raises(ConfigurationError, match=r"layer 'ai' is not built .*run `make layers`"):
        built_layers(tmp_path)


def test_the_stack_needs_the_base_layer(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="base layer"):
        StratusStack(App(), "Stratus-dev", stage="dev", layer_dirs={"ai": tmp_path})


@pytest.mark.parametrize("stage", ["Acme", "a", "acme_corp", "-acme"])
def test_a_stage_that_is_not_a_name_is_refused(stage: str) -> None:
    with pytest.raises(ConfigurationError, match="lowercase letters"):
        deployment_settings(stage, None)


def test_a_tenant_stage_must_name_its_frontends() -> None:
    with pytest.raises(ConfigurationError, match="corsOrigins"):
        deployment_settings("acme", None)


def test_a_tenant_stage_may_not_allow_every_origin() -> None:
    with pytest.raises(ConfigurationError, match="may not be"):
        deployment_settings("acme", "https://app.acme.example,*")


def test_the_archiving_cutoff_given_at_deploy_is_checked_as_the_functions_check_it() -> None:
    assert deployment_settings("acme", "https://a.example", "30").archive_conversations_after_days == 30
    assert deployment_settings("acme", "https://a.example").archive_conversations_after_days == 90
    with pytest.raises(ConfigurationError, match="acme"):
        deployment_settings("acme", "https://a.example", "-1")


def test_the_audit_logs_retention_is_a_deploy_choice_checked_like_the_functions_do() -> None:
    assert deployment_settings("acme", "https://a.example", audit_retention_days="30").audit_retention_days == 30
    assert deployment_settings("acme", "https://a.example").audit_retention_days == 365
    with pytest.raises(ConfigurationError, match="audit_retention_days"):
        deployment_settings("acme", "https://a.example", audit_retention_days="0")


def test_the_stages_field_types_given_at_deploy_are_checked_as_the_functions_check_them() -> None:
    given = '{"ticket_reply": {"label": "Ticket reply", "system": "You answer support tickets."}}'
    settings = deployment_settings("acme", "https://a.example", enhance_field_types=given)
    assert settings.enhance_field_types["ticket_reply"].label == "Ticket reply"
    assert json.loads(enhance_field_types_environment(settings)) == json.loads(given)
    # cdk.json may give the context as an object rather than a string
    assert deployment_settings("dev", None, enhance_field_types=json.loads(given)).enhance_field_types.keys() == {
        "ticket_reply"
    }
    bad_template = '{"ticket_reply": {"label": "T", "system": "s", "prompt": "no text here"}}'
    with pytest.raises(ConfigurationError, match=r"enhance_field_types\.ticket_reply\.prompt: must contain \{text\}"):
        deployment_settings("acme", "https://a.example", enhance_field_types=bad_template)
    with pytest.raises(ConfigurationError, match="enhance_field_types: must be a JSON object"):
        deployment_settings("acme", "https://a.example", enhance_field_types="{not json")


def test_field_types_too_long_for_a_lambda_environment_are_refused_at_synth() -> None:
    many = {f"type_{n}": {"label": f"Type {n}", "system": "x" * 200} for n in range(20)}
    with pytest.raises(ConfigurationError, match="4 KB"):
        deployment_settings("acme", "https://a.example", enhance_field_types=json.dumps(many))


def test_dev_stages_default_to_any_origin() -> None:
    assert deployment_settings("dev-alice", None).cors_allow_origins == ("*",)
    assert deployment_settings("acme", "https://a.example, https://b.example").cors_allow_origins == (
        "https://a.example",
        "https://b.example",
    )
