"""The deployment's configuration: account, region, environment, the naming convention and tags.

One JSON file (deploy/loglake-aws.json is the example) names everything a `cdk deploy` needs:

    {"account": "182059100462", "region": "eu-west-1", "environment": "inftes",
     "naming": {"project": "amplifylogs", "component": "logging", "privacy": "intite", "version": 1},
     "tags": {"Project": "...", "Owner": "...", "CostCenter": "...", "Environment": "..."},
     "retentionDays": 365, "dynamodb": {"billing": "on_demand"}, "corsAllowOrigins": []}

Resource names follow `{project}-{component}-{privacy}-{service}{version}-{env}-{account}`, e.g.
`amplifylogs-logging-intite-ss1-inftes-182059100462` for the lake bucket (service "ss").
No AWS library is imported here: the CLI and tests read the file without the CDK.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loglake.amplify.config import AWS_REGION, AmplifyConfigError, parse_config
from loglake.config import parse_origins

REQUIRED_TAGS = ("Project", "Owner", "CostCenter", "Environment")
# Service codes of the naming convention, per kind of resource.
SERVICE_CODES = {
    "lake_bucket": "ss",
    "athena_results": "sr",
    "hot_table": "dt",
    "api": "ag",
    "api_function": "lm",
    "flush_function": "lf",
    "query_function": "lq",
    "search_function": "ls",
    "retention_function": "lr",
    "retention_schedule": "er",
    "compact_schedule": "ek",
    "flush_failures": "qf",
    "compact_function": "lk",
    "key": "km",
    "glue_database": "gd",
    "workgroup": "aw",
    "collector": "sf",
    "amplify_plan_function": "lp",
    "amplify_download_function": "ld",
    "amplify_finish_function": "lc",
    "schedule": "eb",
    "alarms": "sn",
}
_PART = re.compile(r"[a-z0-9]{1,20}")
MAX_NAME_LENGTH = 63  # S3 bucket names (Lambda function names allow 64)
_ACCOUNT = re.compile(r"\d{12}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")


class DeploymentConfigError(ValueError):
    """The deployment configuration cannot work; the message names the field."""


@dataclass(frozen=True)
class Deployment:
    account: str
    region: str
    environment: str
    project: str
    component: str
    privacy: str
    version: int
    tags: dict[str, str]
    retention_days: int = 365
    billing: str = "on_demand"  # or "provisioned" (auto-scaling 5-100 at 70%)
    time_shards: int = 4  # partitions per index key (store/dynamodb.py): ~1,000 writes/s each
    cors_allow_origins: tuple[str, ...] = ()
    amplify: dict[str, Any] | None = None  # the collector's configuration (users' format), if any
    # AWS profile of an Amplify app -> the role the downloader assumes for it (apps in other accounts);
    # profiles not listed use the downloader's own role
    amplify_roles: dict[str, str] = field(default_factory=dict)

    @property
    def amplify_retention_days(self) -> int | None:
        """The collector's logRetention.days, when the deployment collects Amplify logs."""
        if self.amplify is None:
            return None
        return parse_config(self.amplify).retention_days

    def name(self, resource: str) -> str:
        """The convention's name of one resource (see SERVICE_CODES)."""
        code = SERVICE_CODES[resource]
        return f"{self.project}-{self.component}-{self.privacy}-{code}{self.version}-{self.environment}-{self.account}"


def load_deployment(path: Path) -> Deployment:
    """The file's deployment; `amplifyConfig` names the collector's configuration file (relative to it)."""
    document = _read_json(path)
    amplify = None
    if isinstance(document, dict) and document.get("amplifyConfig"):
        amplify_path = path.parent / str(document["amplifyConfig"])
        amplify = _read_json(amplify_path)
        try:
            profiles = {app.profile for app in parse_config(amplify).apps}
        except AmplifyConfigError as e:
            raise DeploymentConfigError(f"amplifyConfig {amplify_path}: {e}") from None
        for profile in (document.get("amplifyRoles") or {}).keys() - profiles:
            known = ", ".join(sorted(profiles))
            raise DeploymentConfigError(
                f"amplifyRoles: {profile!r} is no app's profile in {amplify_path} (known: {known})"
            )
    elif isinstance(document, dict) and document.get("amplifyRoles"):
        raise DeploymentConfigError("amplifyRoles: set amplifyConfig too (the roles are for its apps' profiles)")
    return replace(parse_deployment(document), amplify=amplify)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DeploymentConfigError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise DeploymentConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from None


def parse_deployment(document: Any) -> Deployment:
    if not isinstance(document, dict):
        raise DeploymentConfigError("the deployment configuration must be a JSON object")
    known = {
        "account", "region", "environment", "naming", "tags", "retentionDays", "dynamodb", "corsAllowOrigins",
        "amplifyConfig", "amplifyRoles",
    }  # fmt: skip
    unknown = sorted(document.keys() - known)
    if unknown:
        raise DeploymentConfigError(f"unknown field {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
    account = _match(document.get("account"), _ACCOUNT, "account", "a 12-digit AWS account id")
    region = _match(document.get("region"), AWS_REGION, "region", "an AWS region such as eu-west-1")
    environment = _match(document.get("environment"), _PART, "environment", "1-20 lowercase letters or digits")
    naming = _section(document, "naming", {"project", "component", "privacy", "version"})
    parts = {
        k: _match(naming.get(k), _PART, f"naming.{k}", "1-20 lowercase letters or digits")
        for k in ("project", "component", "privacy")
    }
    version = naming.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= 9:
        raise DeploymentConfigError("naming.version: must be a digit, 0-9")
    tags = document.get("tags") or {}
    missing = [t for t in REQUIRED_TAGS if not isinstance(tags.get(t), str) or not tags.get(t)]
    if missing:
        raise DeploymentConfigError(
            f"tags: missing {', '.join(missing)} (every resource carries {', '.join(REQUIRED_TAGS)})"
        )
    table = _section(document, "dynamodb", {"billing", "timeShards"})
    billing = table.get("billing", "on_demand")
    if billing not in ("on_demand", "provisioned"):
        raise DeploymentConfigError("dynamodb.billing: must be on_demand or provisioned")
    time_shards = table.get("timeShards", 4)
    if not isinstance(time_shards, int) or isinstance(time_shards, bool) or not 1 <= time_shards <= 64:
        raise DeploymentConfigError(
            "dynamodb.timeShards: must be 1-64 (about 1,000 record writes/s each; raise it, never lower it)"
        )
    retention = document.get("retentionDays", 365)
    if not isinstance(retention, int) or isinstance(retention, bool) or not 1 <= retention <= 3650:
        raise DeploymentConfigError("retentionDays: must be a whole number of days, 1-3650")
    origins = document.get("corsAllowOrigins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise DeploymentConfigError("corsAllowOrigins: must be a list of origins such as https://logs.example.com")
    try:
        parse_origins(",".join(origins))
    except ValueError as e:
        raise DeploymentConfigError(f"corsAllowOrigins: {e}") from None
    roles = document.get("amplifyRoles") or {}
    if not isinstance(roles, dict):
        raise DeploymentConfigError(
            'amplifyRoles: must map an app\'s profile to a role ARN: {"profile": "arn:aws:iam::…"}'
        )
    for profile, arn in roles.items():
        _match(arn, _ROLE_ARN, f"amplifyRoles.{profile}", "an IAM role ARN such as arn:aws:iam::111122223333:role/name")
    deployment = Deployment(
        account=account,
        region=region,
        environment=environment,
        version=version,
        tags={str(k): str(v) for k, v in tags.items()},
        retention_days=retention,
        billing=billing,
        time_shards=time_shards,
        cors_allow_origins=tuple(origins),
        amplify_roles=dict(roles),
        **parts,
    )
    example = deployment.name("lake_bucket")  # every name has this length (the service codes are 2 letters)
    if len(example) > MAX_NAME_LENGTH:
        raise DeploymentConfigError(
            f"naming: the names would be {len(example)} characters ({example}); S3 and Lambda allow "
            f"{MAX_NAME_LENGTH}: shorten naming.project, component, privacy or environment"
        )
    return deployment


def _section(document: dict, name: str, known: set[str]) -> dict:
    section = document.get(name) or {}
    if not isinstance(section, dict):
        raise DeploymentConfigError(f"{name}: must be an object")
    unknown = sorted(section.keys() - known)
    if unknown:
        raise DeploymentConfigError(f"{name}: unknown field {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
    return section


def _match(value: Any, pattern: re.Pattern, where: str, expected: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DeploymentConfigError(f"{where}: {value!r} is not {expected}")
    return value
