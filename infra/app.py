"""The CDK app: one `Stratus-<stage>` stack for the stage named on the command line (`cdk synth -c stage=acme`).

cdk.json runs it as `python -m infra.app`; the infrastructure tests build their stacks with `add_stage` and
run the same cdk-nag pack on them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra.functions import REPO_ROOT
from infra.stack import StratusStack
from infra.stage import ConfigurationError


def built_layers(root: Path = REPO_ROOT) -> dict[str, Path]:
    """The build directory of every layer under `layers/` (one per `layers/<name>/requirements.txt`)."""
    layers = {}
    for requirements in sorted(root.glob("layers/*/requirements.txt")):
        build = requirements.parent / "build"
        if not (build / "python").is_dir():
            raise ConfigurationError(f"layer {requirements.parent.name!r} is not built ({build}): run `make layers`")
        layers[requirements.parent.name] = build
    return layers


def add_stage(app: App, stage: str, layer_dirs: Mapping[str, Path]) -> StratusStack:
    """Add the stage's stack to `app`, in the account and region the CDK CLI resolved."""
    return StratusStack(
        app,
        f"Stratus-{stage}",
        stage=stage,
        layer_dirs=layer_dirs,
        env=Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
        description=f"Stratus AI-assistant backend, stage {stage}",
    )


def main() -> None:
    app = App()
    try:
        add_stage(app, str(app.node.try_get_context("stage") or ""), built_layers())
    except ConfigurationError as error:
        raise SystemExit(f"Stratus: {error}") from None
    # Any AWS Solutions finding not acknowledged in the stack fails the synth, and with it every deploy.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    app.synth()


if __name__ == "__main__":
    main()
