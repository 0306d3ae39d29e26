"""The deployment's configuration: account, region, environment, the naming convention and tags.

One JSON file (deploy/loglake-aws.json is the example) names everything a `cdk deploy` needs:

    {"account": "182059100462", "region": "eu-west-1", "environment": "inftes",
     "naming": {"project": "amplifylogs", "component": "logging", "privacy": "intite", "version": 1},
     "tags": {"Project": "...", "Owner": "...", "CostCenter": "...", "Environment": "..."},
     "retentionDays": 365, "dynamodb": {"billing": "on_demand"}, "corsAllowOrigins": [],
     "detections": {"rulesDir": "rules", "scheduleMinutes": 5, "secrets": ["arn:aws:secretsmanager:..."]}}

Resource names follow `{project}-{component}-{privacy}-{service}{version}-{env}-{account}`, e.g.
`amplifylogs-logging-intite-ss1-inftes-182059100462` for the lake bucket (service "ss").
No AWS library is imported here: the CLI and tests read the file without the CDK.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import msgspec

from loglake.amplify.config import AmplifyConfigError, Region, parse_config
from loglake.aws.ask_config import AskConfig
from loglake.aws.ui_config import UiSection, ui_problems
from loglake.config import parse_origins
from loglake.config_files import problems_of, whole

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
    "detections_table": "dn",
    "detect_function": "la",
    "detect_schedule": "ea",
    "router_function": "lo",
    "deliveries_queue": "qa",
    "deliveries_dead": "qd",
    "alert_topics": "sa",
    "ask_function": "lx",
    "ask_table": "dx",
    "ui_api": "au",
    "ui_function": "lu",
    "sessions_table": "du",
    "user_pool": "cu",
}
MAX_NAME_LENGTH = 63  # S3 bucket names (Lambda function names allow 64)
# A target's input, in characters: the collection's and the retention's schedules pass the Amplify configuration.
EVENT_INPUT_CHARS = 8192

_Part = Annotated[str, msgspec.Meta(pattern=whole(r"[a-z0-9]{1,20}"), description="1-20 lowercase letters or digits")]
_Tags = dict[str, Annotated[str, msgspec.Meta(min_length=1, description="a non-empty text")]]
_Origins = Annotated[list[str], msgspec.Meta(description="a list of origins such as https://logs.example.com")]
_RoleArn = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}"),
        description="an IAM role ARN such as arn:aws:iam::111122223333:role/name",
    ),
]


class _Naming(msgspec.Struct, forbid_unknown_fields=True):
    project: _Part
    component: _Part
    privacy: _Part
    version: Annotated[int, msgspec.Meta(ge=0, le=9, description="a digit, 0-9")] = 1


class _DynamoDB(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    billing: Annotated[
        str, msgspec.Meta(pattern=whole("on_demand|provisioned"), description="on_demand or provisioned")
    ] = "on_demand"
    time_shards: Annotated[
        int,
        msgspec.Meta(
            ge=1, le=64, description="a whole number from 1 to 64 (about 1,000 record writes/s each, never lower it)"
        ),
    ] = 4


class _Detections(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    rules_dir: Annotated[str, msgspec.Meta(min_length=1, description="the rules folder, relative to this file")]
    schedule_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440, description="a whole number of minutes, 1-1440")] = 5
    secrets: list[
        Annotated[
            str,
            msgspec.Meta(
                pattern=whole(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@*-]+"),
                description="a Secrets Manager secret ARN (a trailing -* for the random suffix)",
            ),
        ]
    ] = msgspec.field(default_factory=list)


class _DeploymentFile(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """The file as written; parse_deployment makes it a Deployment."""

    account: Annotated[str, msgspec.Meta(pattern=whole(r"\d{12}"), description="a 12-digit AWS account id")]
    region: Region
    environment: _Part
    naming: _Naming
    tags: _Tags = msgspec.field(default_factory=dict)
    retention_days: Annotated[
        int, msgspec.Meta(ge=1, le=3650, description="a whole number of days between 1 and 3650")
    ] = 365
    dynamodb: _DynamoDB = msgspec.field(default_factory=_DynamoDB)
    cors_allow_origins: _Origins = msgspec.field(default_factory=list)
    amplify_config: str = ""  # the collector's configuration file, relative to this one (read by load_deployment)
    amplify_roles: dict[str, _RoleArn] = msgspec.field(default_factory=dict)
    detections: _Detections | None = None
    ask: AskConfig | None = None
    ui: UiSection | None = None  # the web UI on its own domain, signed in through Cognito (aws/ui_config.py)


class DeploymentConfigError(ValueError):
    """The deployment configuration cannot work; the message names the field."""


@dataclass(frozen=True)
class DetectionSettings:
    """Detections on AWS (aws/infra/detections.py): the rules folder bundled at synth, how often the
    rules run, and the Secrets Manager secrets alerting.yml's references may read."""

    rules_dir: Path
    schedule_minutes: int = 5
    secrets: tuple[str, ...] = ()


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
    detections: DetectionSettings | None = None
    ask: AskConfig | None = None  # asking in plain language (aws/infra/ask.py)
    ui: UiSection | None = None

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
    """The file's deployment; `amplifyConfig` names the collector's configuration file (relative to it).
    DeploymentConfigError names every problem of both files."""
    document = _read_json(path)
    amplify = None
    problems = []
    roles = document.get("amplifyRoles") if isinstance(document, dict) else None
    # (a value that is no file name, `5`, is parse_deployment's problem to name: it is not read as a path)
    if isinstance(document, dict) and document.get("amplifyConfig") and isinstance(document["amplifyConfig"], str):
        amplify_path = path.parent / document["amplifyConfig"]
        amplify = _read_json(amplify_path)
        profiles: set[str] | None = None  # unknown when the configuration is refused: no role is checked against it
        try:
            profiles = {app.profile for app in parse_config(amplify).apps}
        except AmplifyConfigError as e:
            problems.append(f"amplifyConfig {amplify_path}: {e}")
        size = len(json.dumps({"config": amplify}, separators=(",", ":"), ensure_ascii=False))
        if size > EVENT_INPUT_CHARS:  # (as the CDK writes the schedules' input: compact JSON)
            problems.append(
                f"amplifyConfig {amplify_path}: {size} characters as the schedules' input; EventBridge takes at most "
                f"{EVENT_INPUT_CHARS} (about 55 apps): collect the other apps in another deployment"
            )
        elif profiles is not None:
            for profile in sorted(roles.keys() - profiles if isinstance(roles, dict) else ()):
                known = ", ".join(sorted(profiles))
                problems.append(f"amplifyRoles: {profile!r} is no app's profile in {amplify_path} (known: {known})")
    elif roles:
        problems.append("amplifyRoles: set amplifyConfig too (the roles are for its apps' profiles)")
    try:
        deployment = parse_deployment(document)
    except DeploymentConfigError as e:
        problems.insert(0, str(e))
    if problems:
        raise DeploymentConfigError("; ".join(problems))
    if deployment.detections is not None:  # the rules folder is relative to the file
        detections = replace(deployment.detections, rules_dir=path.parent / deployment.detections.rules_dir)
        deployment = replace(deployment, detections=detections)
    return replace(deployment, amplify=amplify)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DeploymentConfigError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise DeploymentConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from None


def parse_deployment(document: Any) -> Deployment:
    """The deployment of a decoded JSON document; DeploymentConfigError names every problem."""
    problems = problems_of(document, _DeploymentFile)
    if isinstance(document, dict):  # the rules msgspec cannot say, on the fields that are valid themselves
        tags, origins = document.get("tags", {}), document.get("corsAllowOrigins", [])
        if not problems_of(tags, _Tags):
            problems += _tag_problems(tags)
        if not problems_of(origins, _Origins):
            problems += _origin_problems(origins)
    if problems:
        raise DeploymentConfigError("; ".join(problems))
    file = msgspec.convert(document, _DeploymentFile)
    deployment = Deployment(
        account=file.account,
        region=file.region,
        environment=file.environment,
        project=file.naming.project,
        component=file.naming.component,
        privacy=file.naming.privacy,
        version=file.naming.version,
        tags=file.tags,
        retention_days=file.retention_days,
        billing=file.dynamodb.billing,
        time_shards=file.dynamodb.time_shards,
        cors_allow_origins=tuple(file.cors_allow_origins),
        amplify_roles=file.amplify_roles,
        detections=None
        if file.detections is None
        else DetectionSettings(
            Path(file.detections.rules_dir), file.detections.schedule_minutes, tuple(file.detections.secrets)
        ),
        ask=file.ask,
        ui=file.ui,
    )
    example = deployment.name("lake_bucket")  # every name has this length (the service codes are 2 letters)
    if len(example) > MAX_NAME_LENGTH:
        raise DeploymentConfigError(
            f"naming: the names would be {len(example)} characters ({example}); S3 and Lambda allow "
            f"{MAX_NAME_LENGTH}: shorten naming.project, component, privacy or environment"
        )
    if deployment.ui is not None and (
        problems := ui_problems(deployment.ui, deployment.region, deployment.name("user_pool"))
    ):
        raise DeploymentConfigError("; ".join(problems))
    return deployment


def _tag_problems(tags: dict[str, str]) -> list[str]:
    """Each required tag that is not there, at its path as a missing field is (config_files); each key or value
    CloudFormation would refuse mid-deploy (the CDK's synth only warns of them)."""
    carried = f"every resource carries {', '.join(REQUIRED_TAGS)}"
    problems = [f"tags.{tag}: missing ({carried})" for tag in REQUIRED_TAGS if tag not in tags]
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or not _taggable(key) or key.lower().startswith("aws:"):
            problems.append(f"tags: {key!r} is not a tag key (1-128 {_TAG_CHARACTERS}, not starting with aws:)")
        if len(value) > 256 or not _taggable(value):
            problems.append(f"tags.{key}: {value!r} is not a tag value (at most 256 {_TAG_CHARACTERS})")
    return problems


_TAG_CHARACTERS = "letters, digits, spaces or _ . : / = + - @"


def _taggable(text: str) -> bool:
    r"""AWS's tag pattern, [\p{L}\p{Z}\p{N}_.:/=+\-@]*: letters, separators, numbers and those signs."""
    return all(unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@" for c in text)


def _origin_problems(origins: list[str]) -> list[str]:
    try:
        parse_origins(",".join(origins))
    except ValueError as e:
        return [f"corsAllowOrigins: {e}"]
    return []
