"""Lines of a log stream as records: plain text, loglake records, and other loggers' JSON lines."""

from __future__ import annotations

import json

import pytest

from loglake.line_records import line_to_record
from loglake.model import Limits, record_problems

NOW = 1_796_000_000_000  # 2026-11-30T00:53:20Z, the time the line was read
DEFAULTS = {"service": "app"}


def test_plain_text_is_the_message() -> None:
    assert line_to_record("plain text\r\n", DEFAULTS, NOW) == {
        "service": "app",
        "message": "plain text",
        "timestamp": NOW,
    }
    assert line_to_record("{not json", {}, NOW) == {"message": "{not json", "timestamp": NOW}
    assert line_to_record('["a JSON array"]', {}, NOW) == {"message": '["a JSON array"]', "timestamp": NOW}
    assert line_to_record("   \n", DEFAULTS, NOW) is None


def test_json_nested_too_deep_to_read_is_plain_text() -> None:
    deep = '{"a":' * 10_000 + "1" + "}" * 10_000  # 60 KB: a message
    assert line_to_record(deep, {}, NOW) == {"message": deep, "timestamp": NOW}


def test_a_loglake_record_is_read_by_the_same_rule() -> None:
    line = '{"message": "m", "service": "own", "severity": "loud", "attributes": {"k": 1}}'
    # Its unknown severity stays an attribute, as another logger's would: the record is stored, not refused.
    assert line_to_record(line, {**DEFAULTS, "log_type": "audit"}, NOW) == {
        "service": "own",
        "log_type": "audit",
        "timestamp": NOW,
        "message": "m",
        "attributes": {"k": 1, "severity": "loud"},
    }
    uuid = "0b7e3f2a-5c1d-4e8f-9a6b-1c2d3e4f5a6b"
    assert line_to_record(f'{{"message": "m", "id": "{uuid}"}}', {}, NOW) == {
        "timestamp": NOW,
        "message": "m",
        "id": uuid,
    }


@pytest.mark.parametrize(
    ("fields", "record_fields", "attributes"),
    [
        ({"severity": "EMERGENCY"}, {"severity": "critical"}, {}),  # refused before: the line held only record fields
        ({"severity": "EMERGENCY", "trace": "t1"}, {"severity": "critical"}, {"trace": "t1"}),
        ({"severity": "DEFAULT"}, {}, {"severity": "DEFAULT"}),  # GCP: no level given
        ({"service": "a b"}, {}, {"service": "a b"}),
        ({"timestamp": 35}, {}, {"timestamp": 35}),
        ({"attributes": "nope"}, {}, {"attributes": "nope"}),
        ({"id": "not-a-uuid"}, {}, {"id": "not-a-uuid"}),
        ({"trace_id": "0" * 32, "spanId": "xyz"}, {}, {"trace_id": "0" * 32, "spanId": "xyz"}),
        ({"id": "not-a-uuid", "attributes": {"id": 1}}, {}, {"id": 1, "id#2": "not-a-uuid"}),
    ],
)
def test_a_value_the_record_cannot_take_is_kept_as_an_attribute(
    fields: dict, record_fields: dict, attributes: dict
) -> None:
    record = line_to_record(json.dumps({"message": "m", **fields}), {}, NOW)
    expected = {"timestamp": NOW, "message": "m", **record_fields}
    assert record == (expected | {"attributes": attributes} if attributes else expected)
    assert record_problems(record, Limits(), NOW) == []


def test_trace_context_as_loggers_write_it_becomes_the_records_ids() -> None:
    line = json.dumps({"msg": "m", "traceId": "4BF92F3577B34DA6A3CE929D0E0E4736", "span_id": "00f067aa0ba902b7"})
    record = line_to_record(line, {}, NOW)
    assert (record["trace_id"], record["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert "attributes" not in record and record_problems(record, Limits(), NOW) == []


def test_the_trial_users_pino_line() -> None:
    line = '{"level":"info","msg":"request done","host":"web1"}'
    assert line_to_record(line, {"service": "pino"}, NOW) == {
        "service": "pino",
        "timestamp": NOW,
        "message": "request done",
        "severity": "info",
        "attributes": {"host": "web1"},
    }


@pytest.mark.parametrize(
    ("logger", "fields", "expected"),
    [
        (
            "pino",
            {"level": 50, "time": 1_795_322_781_801, "pid": 7, "hostname": "web1", "msg": "boom"},
            {"message": "boom", "severity": "error", "timestamp": 1_795_322_781_801},
        ),
        (
            "bunyan",
            {"name": "api", "hostname": "h", "pid": 1, "level": 60, "msg": "down", "time": "2026-11-22T04:46:21.801Z"},
            {"message": "down", "severity": "critical", "timestamp": 1_795_322_781_801},
        ),
        (
            "logrus",
            {"level": "warning", "msg": "slow", "time": "2026-11-22T05:46:21+01:00", "file": "main.go:20"},
            {"message": "slow", "severity": "warning", "timestamp": 1_795_322_781_000},
        ),
        (
            "zap",
            {"level": "dpanic", "ts": 1_795_322_781.8015, "caller": "main.go:12", "msg": "odd"},
            {"message": "odd", "severity": "error", "timestamp": 1_795_322_781_801},
        ),
        (
            "winston",
            {"level": "verbose", "message": "details", "timestamp": "2026-11-22T04:46:21.801Z", "label": "x"},
            {"message": "details", "severity": "debug", "timestamp": 1_795_322_781_801},
        ),
        (
            "Serilog",
            {"@timestamp": "2026-11-22T04:46:21.801Z", "level": "Information", "message": "hi", "SourceContext": "A"},
            {"message": "hi", "severity": "info", "timestamp": 1_795_322_781_801},
        ),
        (
            "python-json-logger",
            {"levelname": "CRITICAL", "message": "disk", "name": "app.db"},
            {"message": "disk", "severity": "critical", "timestamp": NOW},
        ),
        (
            "ECS",
            {"@timestamp": "2026-11-22T04:46:21.801Z", "log.level": "warn", "message": "m", "ecs.version": "1.6"},
            {"message": "m", "severity": "warning", "timestamp": 1_795_322_781_801},
        ),
        (
            "journald",
            {"MESSAGE": "started", "PRIORITY": "3", "__REALTIME_TIMESTAMP": "1795322781801234", "_PID": "1"},
            {"message": "started", "severity": "error", "timestamp": 1_795_322_781_801},
        ),
    ],
)
def test_other_loggers_lines(logger: str, fields: dict, expected: dict) -> None:
    mapped = {"message", "msg", "MESSAGE", "level", "levelname", "log.level", "PRIORITY"}
    mapped |= {"time", "ts", "@timestamp", "timestamp", "__REALTIME_TIMESTAMP"}
    record = line_to_record(json.dumps(fields), DEFAULTS, NOW)
    assert record == {"service": "app", **expected, "attributes": {k: v for k, v in fields.items() if k not in mapped}}


def test_ecs_service_name_dotted_or_nested_is_the_service() -> None:
    """As the Elasticsearch endpoint maps it: ecs-logging writes `service` nested, other ECS loggers dotted."""
    ecs = {"@timestamp": "2026-11-22T04:46:21.801Z", "log.level": "error", "message": "m", "ecs.version": "1.6.0"}
    mapped = {"severity": "error", "timestamp": 1_795_322_781_801, "message": "m"}
    dotted = line_to_record(json.dumps({**ecs, "service.name": "checkout"}), DEFAULTS, NOW)
    assert dotted == {"service": "checkout", **mapped, "attributes": {"ecs.version": "1.6.0"}}
    nested = line_to_record(json.dumps({**ecs, "service": {"name": "checkout", "version": "1.2"}}), DEFAULTS, NOW)
    assert nested == {
        "service": "checkout",
        **mapped,
        "attributes": {"ecs.version": "1.6.0", "service": {"version": "1.2"}},
    }
    alone = line_to_record(json.dumps({**ecs, "service": {"name": "checkout"}}), DEFAULTS, NOW)
    assert alone == dotted


def test_ecs_level_and_trace_context_dotted_or_nested_are_the_records() -> None:
    """As the Elasticsearch endpoint maps them: a nested parent keeps its other fields, or goes when none are left."""
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    ids = {"severity": "warning", "trace_id": trace, "span_id": span}
    dotted = {"message": "m", "log.level": "WARN", "trace.id": trace.upper(), "span.id": span}
    assert line_to_record(json.dumps(dotted), {}, NOW) == {"timestamp": NOW, "message": "m", **ids}
    nested = {"message": "m", "log": {"level": "WARN"}, "trace": {"id": trace.upper()}, "span": {"id": span}}
    assert line_to_record(json.dumps(nested), {}, NOW) == {"timestamp": NOW, "message": "m", **ids}
    with_others = {**nested, "log": {"level": "WARN", "logger": "app"}, "span": {"id": span, "kind": "server"}}
    assert line_to_record(json.dumps(with_others), {}, NOW) == {
        "timestamp": NOW,
        "message": "m",
        **ids,
        "attributes": {"log": {"logger": "app"}, "span": {"kind": "server"}},
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"trace.id": "not-a-trace-id", "span.id": "0" * 16},  # no id, and the all-zero id W3C calls none
        {"trace": {"id": "abc", "flags": 1}, "span": {"id": 16}},
        {"log": {"level": "chatty"}},
        {"log.level": 3},
    ],
)
def test_ecs_values_that_are_no_level_or_id_stay_as_attributes(fields: dict) -> None:
    assert line_to_record(json.dumps({"message": "m", **fields}), {}, NOW) == {
        "timestamp": NOW,
        "message": "m",
        "attributes": fields,
    }


def test_trace_context_named_as_loggers_do_wins_over_ecs() -> None:
    trace, other = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
    record = line_to_record(json.dumps({"msg": "m", "trace_id": trace, "trace": {"id": other}}), {}, NOW)
    assert (record["trace_id"], record["attributes"]) == (trace, {"trace": {"id": other}})


@pytest.mark.parametrize(
    ("fields", "service", "attributes"),
    [
        ({"service": "api", "service.name": "checkout"}, "api", {"service.name": "checkout"}),  # the first wins
        ({"service": "a b", "service.name": "checkout"}, "checkout", {"service": "a b"}),
        ({"service.name": "a b"}, "app", {"service.name": "a b"}),  # no valid name: the default service
        ({"service": {"name": "a b"}}, "app", {"service": {"name": "a b"}}),
        ({"service": {"name": 7, "x": 1}}, "app", {"service": {"name": 7, "x": 1}}),
    ],
)
def test_an_ecs_service_name_that_cannot_be_used_stays(fields: dict, service: str, attributes: dict) -> None:
    record = line_to_record(json.dumps({"msg": "m", **fields}), DEFAULTS, NOW)
    assert (record["service"], record["attributes"]) == (service, attributes)


def test_values_that_cannot_be_used_stay_as_attributes() -> None:
    fields = {"level": "http", "time": 35, "service": "not a name", "msg": "", "log_type": "web"}
    record = line_to_record(json.dumps(fields), {"severity": "warning"}, NOW)
    assert record == {
        "severity": "warning",  # the default: "http" is no level loglake knows
        "timestamp": NOW,  # 35 is no time (35 s after 1970): a duration, say
        "message": json.dumps(fields),  # an empty msg is no message: the line is
        "log_type": "web",
        "attributes": {"level": "http", "time": 35, "service": "not a name", "msg": ""},
    }


def test_the_first_usable_field_wins_and_the_others_stay() -> None:
    line = '{"message": {"text": "not a string"}, "msg": "used", "severity": 42, "level": 40, "ts": "1795322781"}'
    assert line_to_record(line, {}, NOW) == {
        "timestamp": 1_795_322_781_000,
        "message": "used",
        "severity": "warning",
        "attributes": {"message": {"text": "not a string"}, "severity": 42},
    }


@pytest.mark.parametrize(
    ("time_value", "expected"),
    [
        (1_795_322_781, 1_795_322_781_000),  # seconds
        (1_795_322_781.5, 1_795_322_781_500),
        (1_795_322_781_801, 1_795_322_781_801),  # milliseconds
        (1_795_322_781_801_234, 1_795_322_781_801),  # microseconds
        (1_795_322_781_801_934_567, 1_795_322_781_801),  # nanoseconds, truncated as ISO times are
        ("1795322781801", 1_795_322_781_801),  # digits
        (NOW + 86_400_000 + 1, None),  # more than a day ahead: not this record's time
        ("yesterday", None),
        (True, None),
    ],
)
def test_times_in_any_unit(time_value: object, expected: int | None) -> None:
    notes: list[str] = []
    record = line_to_record(json.dumps({"msg": "m", "time": time_value}), {}, NOW, notes=notes)
    if expected is None:
        assert record["timestamp"] == NOW and record["attributes"] == {"time": time_value}
        assert len(notes) == 1 and notes[0].startswith(f"time {json.dumps(time_value)} is ")
    else:
        assert record["timestamp"] == expected and "attributes" not in record and notes == []


@pytest.mark.parametrize(
    ("line", "note"),
    [
        (
            '{"msg": "m", "time": "2030-01-01T00:00:00Z"}',
            'time "2030-01-01T00:00:00Z" is more than 24 h ahead of this machine\'s clock',
        ),
        ('{"msg": "m", "ts": 35}', "ts 35 is before 1973"),
        (
            '{"msg": "m", "@timestamp": "noon"}',
            '@timestamp "noon" is no time (ISO-8601, or epoch seconds, ms, us or ns)',
        ),
    ],
)
def test_a_time_that_cannot_be_the_records_is_said_with_the_time_given_instead(line: str, note: str) -> None:
    notes: list[str] = []
    record = line_to_record(line, {}, NOW, notes=notes)
    assert record["timestamp"] == NOW
    name = note.split()[0]
    assert notes == [f"{note}: stamped with the time read, 2026-11-30T00:53:20.000Z ({name} kept as an attribute)"]


def test_a_time_that_cannot_be_used_says_nothing_when_another_time_field_gives_one() -> None:
    notes: list[str] = []
    record = line_to_record('{"msg": "m", "time": "noon", "ts": 1795322781}', {}, NOW, notes=notes)
    assert record["timestamp"] == 1_795_322_781_000 and record["attributes"] == {"time": "noon"} and notes == []


def test_attributes_of_a_structured_line_merge_unless_names_clash() -> None:
    merged = line_to_record('{"msg": "m", "attributes": {"a": 1}, "host": "h"}', {}, NOW)
    assert merged["attributes"] == {"a": 1, "host": "h"}
    clashing = line_to_record('{"msg": "m", "attributes": {"host": 1}, "host": "h"}', {}, NOW)
    assert clashing["attributes"] == {"attributes": {"host": 1}, "host": "h"}


def test_a_message_that_is_not_a_string_makes_a_structured_line() -> None:
    assert line_to_record('{"message": 5}', {}, NOW) == {
        "timestamp": NOW,
        "message": '{"message": 5}',
        "attributes": {"message": 5},
    }


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (10, "debug"),
        (20, "debug"),
        (30, "info"),
        (40, "warning"),
        (50, "error"),
        (60, "critical"),
        ("TRACE", "debug"),
        ("silly", "debug"),  # winston
        ("Verbose", "debug"),  # Serilog
        ("Information", "info"),
        ("dpanic", "error"),  # zap
        ("notice", "info"),
        ("informational", "info"),
        ("WARN", "warning"),
        ("err", "error"),
        ("fatal", "critical"),
        ("panic", "critical"),
        ("crit", "critical"),
        ("alert", "critical"),
        ("emerg", "critical"),
        ("emergency", "critical"),
        ("NOTICE", "info"),  # GCP's severities
        ("ALERT", "critical"),
        ("EMERGENCY", "critical"),
    ],
)
def test_levels(level: object, severity: str) -> None:
    assert line_to_record(json.dumps({"msg": "m", "level": level}), {}, NOW)["severity"] == severity


@pytest.mark.parametrize(
    ("priority", "severity"), [("0", "critical"), (2, "critical"), ("4", "warning"), ("7", "debug")]
)
def test_journald_priorities(priority: object, severity: str) -> None:
    assert line_to_record(json.dumps({"MESSAGE": "m", "PRIORITY": priority}), {}, NOW)["severity"] == severity


@pytest.mark.parametrize("level", [35, 0, "8", "loud", "DEFAULT"])
def test_unknown_levels_stay_as_attributes(level: object) -> None:
    record = line_to_record(json.dumps({"msg": "m", "level": level}), {}, NOW)
    assert "severity" not in record and record["attributes"] == {"level": level}


def test_attributes_nested_too_deep_are_kept_as_json_text_at_the_deepest_level() -> None:
    line = '{"msg":"pino deep","a":{"b":{"c":{"d":{"e":{"f":1}}}}},"list":[[[[[[2]]]]]]}'
    record = line_to_record(line, {}, NOW)
    assert record["attributes"] == {"a": {"b": {"c": {"d": {"e": '{"f":1}'}}}}, "list": [[[["[[2]]"]]]]}
    assert record_problems(record, Limits(), NOW) == []


def test_attributes_beyond_the_most_keys_are_kept_together_as_json_text() -> None:
    fields = {f"k{i:03d}": i for i in range(200)}
    notes: list[str] = []
    record = line_to_record(json.dumps({"msg": "m", **fields}), {}, NOW, notes=notes)
    kept = {f"k{i:03d}": i for i in range(127)}
    overflow = json.dumps({f"k{i:03d}": i for i in range(127, 200)}, separators=(",", ":"))
    assert record["attributes"] == kept | {"loglake.overflow": overflow}
    assert notes == ["73 attribute(s) beyond the limits kept as JSON text in loglake.overflow"]
    assert record_problems(record, Limits(), NOW) == []


def test_attributes_too_large_even_as_overflow_are_cut_with_a_mark() -> None:
    big = '"' * 70_000  # each quote is 4 bytes once it is JSON text inside a JSON string
    notes: list[str] = []
    record = line_to_record(json.dumps({"msg": "m", "host": "h", "big": big}), {}, NOW, notes=notes)
    attributes = record["attributes"]
    assert attributes["host"] == "h" and set(attributes) == {"host", "loglake.overflow"}
    assert attributes["loglake.overflow"].startswith('{"big":"\\"')
    assert attributes["loglake.overflow"].endswith("... [cut: 140010 bytes in all]")  # {"big":"+2*70000+"}
    assert len(json.dumps(attributes, separators=(",", ":"))) > 60_000  # what fits is kept
    assert notes == ["1 attribute(s) beyond the limits kept as JSON text in loglake.overflow (cut: too large even so)"]
    assert record_problems(record, Limits(), NOW) == []


def test_a_message_too_large_is_cut_at_a_character_and_its_size_kept() -> None:
    line = "a" + "é" * 150_000  # 300,001 bytes; the limit falls in the middle of an é
    notes: list[str] = []
    record = line_to_record(line, {}, NOW, notes=notes)
    assert record["message"] == "a" + "é" * 131_071
    assert record["attributes"] == {"loglake.truncated_bytes": 300_001}
    assert notes == ["message of 300001 bytes cut to 262144 (size kept in loglake.truncated_bytes)"]
    assert record_problems(record, Limits(), NOW) == []


def test_a_line_with_invalid_utf8_says_so() -> None:
    record = line_to_record("latin1 caf\ufffd", {}, NOW, invalid_utf8=True)
    assert record == {"timestamp": NOW, "message": "latin1 caf\ufffd", "attributes": {"loglake.invalid_utf8": True}}
    structured = line_to_record('{"msg": "caf\ufffd", "a": 1}', {}, NOW, invalid_utf8=True)
    assert structured["attributes"] == {"a": 1, "loglake.invalid_utf8": True}
