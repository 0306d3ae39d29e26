"""The collector's configuration, in our users' own JSON format, validated field by field.

    {"applications": [{"profile", "region", "appId", "domainName", "appName"}, ...],
     "s3": {"bucket", "prefix"}, "schedule": {"frequency", "dayOfWeek", "timeOfDay"},
     "logRetention": {"days"}, "timeChunkSize": {"days"}}

Every error names the field (`applications[1].appId`) and says what is wrong with it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CONFIG_ENV = "CONFIG_JSON"  # the Lambda environment's way of passing the file
MAX_CHUNK_DAYS = 14  # GenerateAccessLogs serves at most two weeks per call
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FREQUENCIES = ("daily", "weekly")

_APP_ID = re.compile(r"d[a-z0-9]{1,19}")  # the API's pattern, 1-20 characters
AWS_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}")  # also the deployment's (aws/deployment.py)
_DOMAIN_LABEL = r"(?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9]"
_DOMAIN = re.compile(rf"({_DOMAIN_LABEL}\.)+{_DOMAIN_LABEL}\.?")
_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # it becomes the `app=` partition value
_PROFILE = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class AmplifyConfigError(ValueError):
    """The configuration cannot work; the message names the field."""


@dataclass(frozen=True)
class AmplifyApp:
    profile: str
    region: str
    app_id: str
    domain_name: str
    app_name: str


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
    top = _object(document, "the configuration", required={"applications"}, optional=_TOP_OPTIONAL)
    apps_field = top["applications"]
    if not isinstance(apps_field, list) or not apps_field:
        raise AmplifyConfigError("applications: must be a non-empty list of applications")
    apps = tuple(_app(entry, f"applications[{i}]") for i, entry in enumerate(apps_field))
    names: dict[str, int] = {}
    sites: dict[tuple[str, str], int] = {}
    for i, app in enumerate(apps):
        earlier = names.get(app.app_name.lower())
        if earlier is not None:
            raise AmplifyConfigError(
                f"applications[{i}].appName: {app.app_name!r} is already the name of applications[{earlier}]"
                " (names must be unique, also ignoring case: they are the app= partition of the lake)"
            )
        same_site = sites.get((app.app_id, app.domain_name.lower()))
        if same_site is not None:
            raise AmplifyConfigError(
                f"applications[{i}]: appId {app.app_id} with domainName {app.domain_name} is already "
                f"applications[{same_site}] (it would be collected twice)"
            )
        names[app.app_name.lower()] = i
        sites[(app.app_id, app.domain_name.lower())] = i
    s3 = _object(top.get("s3", {}), "s3", optional={"bucket", "prefix"})
    bucket = _string(s3.get("bucket", ""), "s3.bucket", allow_empty=True)
    if bucket and not _BUCKET.fullmatch(bucket):
        raise AmplifyConfigError(f"s3.bucket: {bucket!r} is not a valid S3 bucket name")
    prefix = _string(s3.get("prefix", ""), "s3.prefix", allow_empty=True)
    retention = _object(top.get("logRetention", {"days": 365}), "logRetention", required={"days"})
    chunk = _object(top.get("timeChunkSize", {"days": MAX_CHUNK_DAYS}), "timeChunkSize", required={"days"})
    return AmplifyConfig(
        apps=apps,
        bucket=bucket,
        prefix=prefix,
        schedule=_schedule(top.get("schedule", {"frequency": "weekly", "dayOfWeek": "Monday", "timeOfDay": "01:00"})),
        retention_days=_integer(retention["days"], "logRetention.days", 1, 3650),
        chunk_days=_integer(chunk["days"], "timeChunkSize.days", 1, MAX_CHUNK_DAYS, why="the API's limit per call"),
    )


_TOP_OPTIONAL = {"s3", "schedule", "logRetention", "timeChunkSize"}
_APP_FIELDS = {"profile", "region", "appId", "domainName", "appName"}


def _app(entry: Any, where: str) -> AmplifyApp:
    fields = _object(entry, where, required=_APP_FIELDS)
    values = {name: _string(fields[name], f"{where}.{name}") for name in _APP_FIELDS}
    checks = [
        ("profile", _PROFILE, "an AWS profile name from the config and credentials files"),
        ("region", AWS_REGION, "an AWS region such as eu-west-1"),
        ("appId", _APP_ID, "an Amplify app id: d followed by lowercase letters and digits, at most 20 characters"),
        ("domainName", _DOMAIN, "a domain name such as example.com or main.d123.amplifyapp.com"),
        (
            "appName",
            _APP_NAME,
            "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit (it names the app= partition)",
        ),
    ]
    for name, pattern, expected in checks:
        if not pattern.fullmatch(values[name]):
            raise AmplifyConfigError(f"{where}.{name}: {values[name]!r} is not {expected}")
    if len(values["domainName"]) > 64:
        raise AmplifyConfigError(f"{where}.domainName: longer than the API's 64 characters")
    return AmplifyApp(values["profile"], values["region"], values["appId"], values["domainName"], values["appName"])


def check_app_name(name: str) -> str:
    if not _APP_NAME.fullmatch(name):
        raise AmplifyConfigError(
            f"{name!r} is not an app name: 1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    return name


def _schedule(value: Any) -> Schedule:
    fields = _object(value, "schedule", required={"frequency", "timeOfDay"}, optional={"dayOfWeek"})
    frequency = _string(fields["frequency"], "schedule.frequency").lower()
    if frequency not in FREQUENCIES:
        raise AmplifyConfigError(f"schedule.frequency: {fields['frequency']!r} is not one of {', '.join(FREQUENCIES)}")
    time_of_day = _string(fields["timeOfDay"], "schedule.timeOfDay")
    if not _TIME_OF_DAY.fullmatch(time_of_day):
        raise AmplifyConfigError(f"schedule.timeOfDay: {time_of_day!r} is not a UTC time HH:MM such as 01:00")
    day = 0
    if frequency == "weekly":
        name = _string(fields.get("dayOfWeek", ""), "schedule.dayOfWeek").capitalize()
        if name not in DAYS:
            raise AmplifyConfigError(f"schedule.dayOfWeek: {fields.get('dayOfWeek')!r} is not one of {', '.join(DAYS)}")
        day = DAYS.index(name)
    hour, minute = (int(part) for part in time_of_day.split(":"))
    return Schedule(frequency, day, hour, minute)


def _object(value: Any, where: str, required: set[str] = frozenset(), optional: set[str] = frozenset()) -> dict:
    if not isinstance(value, dict):
        raise AmplifyConfigError(f"{where}: must be a JSON object")
    unknown = sorted(value.keys() - required - optional)
    if unknown:  # first: a misspelt field is also a missing one, and this names both
        allowed = ", ".join(sorted(required | optional))
        raise AmplifyConfigError(f"{where}: unknown field {', '.join(unknown)} (allowed: {allowed})")
    missing = sorted(required - value.keys())
    if missing:
        raise AmplifyConfigError(f"{where}: missing field {', '.join(missing)}")
    return value


def _string(value: Any, where: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise AmplifyConfigError(f"{where}: must be a non-empty string")
    return value


def _integer(value: Any, where: str, low: int, high: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AmplifyConfigError(f"{where}: must be a whole number")
    if not low <= value <= high:
        reason = f" ({why})" if why else ""
        raise AmplifyConfigError(f"{where}: {value} is not between {low} and {high}{reason}")
    return value
