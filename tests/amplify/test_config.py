"""The users' configuration format: accepted as is, every mistake named with its field."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loglake.amplify.config import AmplifyConfigError, load_config, parse_config

USERS_FILE = {
    "applications": [
        {
            "profile": "HylmarJ",
            "region": "eu-west-1",
            "appId": "d3hgg9jtwyuijn",
            "domainName": "danse.tech",
            "appName": "danse_tech",
        },
        {
            "profile": "JiHy__vsb__299",
            "region": "eu-central-1",
            "appId": "dziu0wvy5r9bx",
            "domainName": "main.dziu0wvy5r9bx.amplifyapp.com",
            "appName": "digital_horizon",
        },
    ],
    "s3": {"bucket": "amplifylogs-logging-intite-ss1-inftes-182059100462", "prefix": ""},
    "schedule": {"frequency": "weekly", "dayOfWeek": "Monday", "timeOfDay": "01:00"},
    "logRetention": {"days": 365},
    "timeChunkSize": {"days": 14},
}


def test_the_users_file_is_accepted_as_is(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(USERS_FILE))
    config = load_config(path)
    assert [a.app_name for a in config.apps] == ["danse_tech", "digital_horizon"]
    assert (config.apps[1].profile, config.apps[1].region, config.apps[1].app_id) == (
        "JiHy__vsb__299",
        "eu-central-1",
        "dziu0wvy5r9bx",
    )
    assert (config.bucket, config.retention_days, config.chunk_days) == (USERS_FILE["s3"]["bucket"], 365, 14)
    assert config.schedule.describe() == "weekly, Monday 01:00 UTC"


def test_the_configuration_can_come_from_the_environment() -> None:
    config = load_config(None, {"CONFIG_JSON": json.dumps(USERS_FILE)})
    assert len(config.apps) == 2
    with pytest.raises(AmplifyConfigError, match="give --config FILE or set CONFIG_JSON"):
        load_config(None, {})


def mistake(path: str, value: object) -> dict:
    document = copy.deepcopy(USERS_FILE)
    *keys, last = path.split(".")
    node = document
    for key in keys:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (mistake("applications.0.color", "red"), "applications[0]: unknown field color"),
        (
            {"applications": [{k.lower(): v for k, v in USERS_FILE["applications"][0].items()}]},
            "unknown field 'appid' (did you mean 'appId'?), 'appname' (did you mean 'appName'?), 'domainname' (did you"
            " mean 'domainName'?) (allowed: appId, appName",
        ),
        (mistake("applications.1.region", "europe"), "applications[1].region: 'europe' is not an AWS region"),
        (mistake("applications.0.appId", "x3hgg9"), "applications[0].appId: 'x3hgg9' is not an Amplify app id"),
        (mistake("applications.0.appName", "digital_horizon"), "applications[1].appName: 'digital_horizon' is already"),
        (mistake("applications.0.domainName", "not a domain"), "applications[0].domainName"),
        (mistake("applications.0.profile", KeyError), "applications[0].profile: missing (an AWS profile name"),
        (mistake("applications.1.appName", "Danse_Tech"), "applications[1].appName: 'Danse_Tech' is already"),
        (mistake("applications.1.appName", ".."), "applications[1].appName: '..' is not 1-128 characters"),
        (
            mistake("applications.1", USERS_FILE["applications"][0] | {"appName": "again"}),
            "applications[1]: appId d3hgg9jtwyuijn with domainName danse.tech is already applications[0]",
        ),
        (
            mistake("timeChunkSize.days", 15),
            "timeChunkSize.days: 15 is not a whole number of days between 1 and 14 (the API's limit",
        ),
        (mistake("logRetention.days", "a year"), "logRetention.days: 'a year' is not a whole number of days"),
        (mistake("logRetention.days", True), "logRetention.days: True is not a whole number of days"),
        (mistake("applications.0.appId", "d3hgg9jtwyuijn\n"), "applications[0].appId: 'd3hgg9jtwyuijn\\n' is not"),
        (mistake("schedule.dayOfWeek", KeyError), "schedule: a weekly schedule needs dayOfWeek, one of Monday"),
        ([USERS_FILE], "the configuration: expected `object`, got `array`"),
        (mistake("schedule.dayOfWeek", "Someday"), "schedule.dayOfWeek: 'Someday' is not one of Monday"),
        (mistake("schedule.timeOfDay", "25:00"), "schedule.timeOfDay: '25:00' is not a UTC time"),
        (mistake("s3.bucket", "Not_A_Bucket"), "s3.bucket: 'Not_A_Bucket' is not a valid S3 bucket name"),
        ({"applications": []}, "applications: [] is not a non-empty list of applications"),
        ({**USERS_FILE, "extra": 1}, "the configuration: unknown field extra"),
    ],
)
def test_mistakes_name_the_field(document: dict, message: str) -> None:
    with pytest.raises(AmplifyConfigError) as caught:
        parse_config(document)
    assert message in str(caught.value)


def test_a_duplicate_app_name_points_at_the_first(tmp_path: Path) -> None:
    document = copy.deepcopy(USERS_FILE)
    document["applications"][1]["appName"] = "danse_tech"
    with pytest.raises(
        AmplifyConfigError, match=r"applications\[1\].appName: 'danse_tech' is already .*applications\[0\]"
    ):
        parse_config(document)


def test_a_file_that_is_not_json_says_where(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"applications": [}')
    with pytest.raises(AmplifyConfigError, match=r"config.json is not valid JSON: .* at line 1 column 19"):
        load_config(path)


def test_an_empty_bucket_means_the_local_lake() -> None:
    assert parse_config(mistake("s3.bucket", "")).bucket == ""
    assert parse_config({"applications": USERS_FILE["applications"]}).bucket == ""


def test_the_weekly_schedule_finds_the_next_monday_one_oclock() -> None:
    schedule = parse_config(USERS_FILE).schedule
    sunday = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert schedule.next_run(sunday) == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    at_the_time = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert schedule.next_run(at_the_time) == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    daily = parse_config(mistake("schedule", {"frequency": "daily", "timeOfDay": "06:30"})).schedule
    assert daily.next_run(sunday) == datetime(2026, 11, 23, 6, 30, tzinfo=UTC)


def test_every_problem_is_named_at_once() -> None:
    document = mistake("applications.0.appId", "x3")
    document["applications"][1] |= {"appName": "Danse_Tech", "colour": "red"}
    del document["applications"][1]["region"]
    document |= {"timeChunkSize": {"days": 30}, "logRetention": {"days": 365, "weeks": 52}, "schedule": "weekly"}
    with pytest.raises(AmplifyConfigError) as caught:
        parse_config(document)
    assert str(caught.value).split("; ") == [
        "applications[0].appId: 'x3' is not an Amplify app id: d followed by lowercase letters and digits, at most"
        " 20 characters",
        "applications[1]: unknown field colour (allowed: appId, appName, domainName, profile, region)",
        "applications[1].region: missing (an AWS region such as eu-west-1)",
        "schedule: expected `object`, got `str`",
        "logRetention: unknown field weeks (allowed: days)",
        "timeChunkSize.days: 30 is not a whole number of days between 1 and 14 (the API's limit per call)",
    ]


def test_names_are_checked_across_applications_even_when_other_fields_are_wrong() -> None:
    document = mistake("applications.1.appName", "Danse_Tech")
    document["timeChunkSize"] = {"days": 0}
    with pytest.raises(AmplifyConfigError) as caught:
        parse_config(document)
    assert str(caught.value).split("; ") == [
        "timeChunkSize.days: 0 is not a whole number of days between 1 and 14 (the API's limit per call)",
        "applications[1].appName: 'Danse_Tech' is already the name of applications[0] (names must be unique, also"
        " ignoring case: they are the app= partition of the lake)",
    ]
