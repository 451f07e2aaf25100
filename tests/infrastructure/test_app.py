"""The app refuses to synthesize a stage it cannot deploy safely, and says what to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App

from infra.app import built_layers
from infra.stack import StratusStack
from infra.stage import ConfigurationError, deployment_settings

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


def test_dev_stages_default_to_any_origin() -> None:
    assert deployment_settings("dev-alice", None).cors_allow_origins == ("*",)
    assert deployment_settings("acme", "https://a.example, https://b.example").cors_allow_origins == (
        "https://a.example",
        "https://b.example",
    )
