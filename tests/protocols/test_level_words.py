"""One table of level words (protocols/names.py): a word names the same severity sent by `loglake send`, over
Splunk HEC and to the Elasticsearch bulk API."""

from __future__ import annotations

import json

import pytest

from loglake.line_records import line_to_record
from loglake.protocols import elastic, splunk
from loglake.protocols.columns import listed
from tests.protocols import column_rows

NOW_MS = 1_796_000_000_000


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("silly", "debug"),  # winston
        ("Verbose", "debug"),  # Serilog, winston
        ("trace", "debug"),
        ("Information", "info"),  # Serilog
        ("informational", "info"),  # syslog
        ("NOTICE", "info"),
        ("warn", "warning"),
        ("err", "error"),
        ("dpanic", "error"),  # zap
        ("PANIC", "critical"),  # logrus, zap
        ("crit", "critical"),  # syslog
        ("alert", "critical"),
        ("emerg", "critical"),
        ("EMERGENCY", "critical"),  # GCP
        ("fatal", "critical"),
    ],
)
def test_a_level_word_names_one_severity_whichever_way_it_comes(word: str, severity: str) -> None:
    sent = line_to_record(json.dumps({"msg": "m", "level": word}), {}, NOW_MS)
    hec = column_rows(splunk.event_columns(json.dumps({"event": "m", "fields": {"level": word}}).encode()))
    source = json.dumps({"message": "m", "log": {"level": word}}).encode()
    _, bulk = elastic.parse_bulk(b'{"create": {"_index": "app"}}\n' + source + b"\n", None)
    assert (sent["severity"], hec[0][3], listed(bulk.severities)) == (severity, severity, [severity])


@pytest.mark.parametrize("word", ["chatty", "DEFAULT", "http"])
def test_a_word_that_names_no_severity_names_none_anywhere(word: str) -> None:
    sent = line_to_record(json.dumps({"msg": "m", "level": word}), {}, NOW_MS)
    hec = column_rows(splunk.event_columns(json.dumps({"event": "m", "fields": {"level": word}}).encode()))
    source = json.dumps({"message": "m", "log": {"level": word}}).encode()
    _, bulk = elastic.parse_bulk(b'{"create": {"_index": "app"}}\n' + source + b"\n", None)
    assert ("severity" in sent, hec[0][3], listed(bulk.severities)) == (False, None, [None])
