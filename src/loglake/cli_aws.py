"""`loglake aws`: the AWS deployment (CDK app) of the same code."""

from __future__ import annotations

from pathlib import Path

import click

from loglake.cli_options import CONTEXT, install_command


@click.group(context_settings=CONTEXT)
def aws() -> None:
    """Deploy loglake on AWS (Lambda, API Gateway, DynamoDB, S3, ...) with the AWS CDK."""


@aws.command(context_settings=CONTEXT)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=Path("deploy/loglake-aws.json"),
    show_default=True,
    help="The deployment configuration: account, region, environment, naming, tags.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("cdk.out"), show_default=True)
@click.option(
    "--bundle",
    is_flag=True,
    help="Also build the functions' dependencies layer (pip, for arm64; ~200 MB), as `cdk deploy` does.",
)
def synth(config_path: Path, out: Path, bundle: bool) -> None:
    """Write the CloudFormation template (what `cdk deploy` would deploy) to --out, checking the config."""
    from loglake.aws.deployment import DeploymentConfigError, load_deployment

    try:
        deployment = load_deployment(config_path)
    except DeploymentConfigError as e:
        raise click.ClickException(f"{config_path}: {e}") from None
    try:
        from loglake.aws.stack import build_app
    except ImportError:
        raise click.ClickException(
            f"the CDK is not installed: {install_command('aws')} (Node.js must be on PATH)"
        ) from None
    try:
        build_app(deployment, outdir=str(out), bundle=bundle).synth()
    except DeploymentConfigError as e:  # found while building: a rule of detections.rulesDir
        raise click.ClickException(f"{config_path}: {e}") from None
    for template in sorted(out.glob("*.template.json")):
        click.echo(f"wrote {template}")


COMMANDS = [aws]
