"""The collector's configuration, in our users' own JSON format, as msgspec Structs.

    {"applications": [{"profile", "region", "appId", "domainName", "appName"}, ...],
     "s3": {"bucket", "prefix"}, "schedule": {"frequency", "dayOfWeek", "timeOfDay"},
     "logRetention": {"days"}, "timeChunkSize": {"days"}}

The rules are declared on the types; a file that breaks them gets every problem at once, each with
its field (`applications[1].appId: ...; timeChunkSize.days: ...`, see config_files.py). Only the
rules across applications (unique names and sites) are written out here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import msgspec

from loglake.config_files import ConfigProblems, convert, problems_of, whole

CONFIG_ENV = "CONFIG_JSON"  # the Lambda environment's way of passing the file
MAX_CHUNK_DAYS = 14  # GenerateAccessLogs serves at most two weeks per call
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FREQUENCIES = ("daily", "weekly")

AWS_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}")  # also the deployment's (aws/deployment.py)
_DOMAIN_LABEL = r"(?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9]"

Region = Annotated[str, msgspec.Meta(pattern=whole(AWS_REGION.pattern), description="an AWS region such as eu-west-1")]
_APP_NAME_RULE = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit (it names the app= partition)"
AppName = Annotated[str, msgspec.Meta(pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"), description=_APP_NAME_RULE)]


def _any_case(words: tuple[str, ...]) -> str:
    return f"(?i:{'|'.join(words)})"


class AmplifyConfigError(ValueError):
    """The configuration cannot work; the message names the field of each problem."""


class AmplifyApp(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    profile: Annotated[
        str,
        msgspec.Meta(
            pattern=whole(r"[A-Za-z0-9_+=,.@-]{1,64}"),
            description="an AWS profile name from the config and credentials files",
        ),
    ]
    region: Region
    app_id: Annotated[
        str,
        msgspec.Meta(
            pattern=whole(r"d[a-z0-9]{1,19}"),  # the API's pattern, 1-20 characters
            description="an Amplify app id: d followed by lowercase letters and digits, at most 20 characters",
        ),
    ]
    domain_name: Annotated[
        str,
        msgspec.Meta(
            pattern=whole(rf"({_DOMAIN_LABEL}\.)+{_DOMAIN_LABEL}\.?"),
            max_length=64,  # the API's limit
            description="a domain name of at most 64 characters such as example.com or main.d123.amplifyapp.com",
        ),
    ]
    app_name: AppName


class _S3(msgspec.Struct, forbid_unknown_fields=True):
    bucket: Annotated[
        str,
        msgspec.Meta(
            pattern=whole(r"|[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"),
            description="a valid S3 bucket name (or empty: the data dir's local lake)",
        ),
    ] = ""
    prefix: str = ""


class _Schedule(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    frequency: Annotated[str, msgspec.Meta(pattern=whole(_any_case(FREQUENCIES)), description="one of daily, weekly")]
    time_of_day: Annotated[
        str, msgspec.Meta(pattern=whole(r"([01]\d|2[0-3]):[0-5]\d"), description="a UTC time HH:MM such as 01:00")
    ]
    day_of_week: Annotated[
        str, msgspec.Meta(pattern=whole(_any_case(DAYS)), description=f"one of {', '.join(DAYS)}")
    ] = ""

    def __post_init__(self) -> None:
        if self.frequency.lower() == "weekly" and not self.day_of_week:
            raise ValueError(f"a weekly schedule needs dayOfWeek, one of {', '.join(DAYS)}")


class _RetentionDays(msgspec.Struct, forbid_unknown_fields=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=3650, description="a whole number of days between 1 and 3650")]


class _ChunkDays(msgspec.Struct, forbid_unknown_fields=True):
    days: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=MAX_CHUNK_DAYS,
            description=f"a whole number of days between 1 and {MAX_CHUNK_DAYS} (the API's limit per call)",
        ),
    ]


class _ConfigFile(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """The file as written; parse_config makes it an AmplifyConfig."""

    applications: Annotated[
        list[AmplifyApp], msgspec.Meta(min_length=1, description="a non-empty list of applications")
    ]
    s3: _S3 = msgspec.field(default_factory=_S3)
    schedule: _Schedule = msgspec.field(default_factory=lambda: _Schedule("weekly", "01:00", "Monday"))
    log_retention: _RetentionDays = msgspec.field(default_factory=lambda: _RetentionDays(365))
    time_chunk_size: _ChunkDays = msgspec.field(default_factory=lambda: _ChunkDays(MAX_CHUNK_DAYS))


@dataclass(frozen=True)
class Schedule:
    frequency: str  # daily | weekly
    day_of_week: int  # 0 = Monday (weekly only)
    hour: int
    minute: int

    def next_run(self, after: datetime) -> datetime:
        """The first scheduled time strictly after `after` (UTC)."""
        after = after.astimezone(UTC)
        candidate = after.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if self.frequency == "weekly":
            candidate += timedelta(days=(self.day_of_week - candidate.weekday()) % 7)
            step = timedelta(days=7)
        else:
            step = timedelta(days=1)
        while candidate <= after:
            candidate += step
        return candidate

    def describe(self) -> str:
        at = f"{self.hour:02d}:{self.minute:02d} UTC"
        return f"weekly, {DAYS[self.day_of_week]} {at}" if self.frequency == "weekly" else f"daily, {at}"


@dataclass(frozen=True)
class AmplifyConfig:
    apps: tuple[AmplifyApp, ...]
    bucket: str  # empty: the local lake of the data dir
    prefix: str
    schedule: Schedule
    retention_days: int
    chunk_days: int

    def app(self, name: str) -> AmplifyApp:
        for app in self.apps:
            if app.app_name == name:
                return app
        known = ", ".join(a.app_name for a in self.apps)
        raise AmplifyConfigError(f"no application named {name!r} in the configuration (it has: {known})")

    def chosen(self, names: Iterable[str] | None) -> list[AmplifyApp]:
        """The apps named (each once: two collections of one app at once would each store what the other does), or
        all of them when none is."""
        return [self.app(name) for name in dict.fromkeys(names)] if names else list(self.apps)


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> AmplifyConfig:
    """The configuration from a file, or else from the CONFIG_JSON environment variable."""
    environ = os.environ if environ is None else environ
    if path is not None:
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except OSError as e:
            raise AmplifyConfigError(f"cannot read the Amplify configuration {path}: {e.strerror}") from None
    elif environ.get(CONFIG_ENV):
        text, source = environ[CONFIG_ENV], f"${CONFIG_ENV}"
    else:
        raise AmplifyConfigError(f"no Amplify configuration: give --config FILE or set {CONFIG_ENV}")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise AmplifyConfigError(f"{source} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    try:
        return parse_config(document)
    except AmplifyConfigError as e:
        raise AmplifyConfigError(f"{source}: {e}") from None


def parse_config(document: Any) -> AmplifyConfig:
    """The configuration of a decoded JSON document; AmplifyConfigError names every problem."""
    try:
        file = convert(document, _ConfigFile)
        problems: list[str] = []
        apps = list(enumerate(file.applications))
    except ConfigProblems as e:
        problems = e.problems
        apps = _valid_apps(document)
    problems += _clashes(apps)
    if problems:
        raise AmplifyConfigError("; ".join(problems))
    schedule = file.schedule
    hour, minute = (int(part) for part in schedule.time_of_day.split(":"))
    weekly = schedule.frequency.lower() == "weekly"
    return AmplifyConfig(
        apps=tuple(file.applications),
        bucket=file.s3.bucket,
        prefix=file.s3.prefix,
        schedule=Schedule(
            schedule.frequency.lower(), DAYS.index(schedule.day_of_week.capitalize()) if weekly else 0, hour, minute
        ),
        retention_days=file.log_retention.days,
        chunk_days=file.time_chunk_size.days,
    )


def _valid_apps(document: Any) -> list[tuple[int, AmplifyApp]]:
    """The applications of a document that has problems elsewhere, those that are valid by themselves."""
    entries = document.get("applications") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return []
    return [(i, msgspec.convert(e, AmplifyApp)) for i, e in enumerate(entries) if not problems_of(e, AmplifyApp)]


def _clashes(apps: list[tuple[int, AmplifyApp]]) -> list[str]:
    """Two applications with one name (ignoring case: it is the app= partition) or one site."""
    problems = []
    names: dict[str, int] = {}
    sites: dict[tuple[str, str], int] = {}
    for i, app in apps:
        earlier = names.setdefault(app.app_name.lower(), i)
        if earlier != i:
            problems.append(
                f"applications[{i}].appName: {app.app_name!r} is already the name of applications[{earlier}]"
                " (names must be unique, also ignoring case: they are the app= partition of the lake)"
            )
        same_site = sites.setdefault((app.app_id, app.domain_name.lower()), i)
        if same_site != i:
            problems.append(
                f"applications[{i}]: appId {app.app_id} with domainName {app.domain_name} is already "
                f"applications[{same_site}] (it would be collected twice)"
            )
    return problems


def check_app_name(name: str) -> str:
    try:
        return msgspec.convert(name, AppName)
    except msgspec.ValidationError:
        raise AmplifyConfigError(f"{name!r} is not an app name: {_APP_NAME_RULE}") from None
