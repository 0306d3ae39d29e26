"""Loki's mapping of a stream's entries, whose structured metadata repeats a few sets: each entry gets its own
set's record, whichever sets change a field and in whatever order they come."""

from __future__ import annotations

from loglake.protocols import loki
from loglake.protocols.columns import listed


def test_entries_repeating_sets_of_metadata_each_get_their_own_sets_fields_and_attributes() -> None:
    given = [
        {},
        {"level": "error", "user": "ann"},
        {"user": "bob"},
        {},
        {"user": "bob"},
        {"level": "error", "user": "ann"},
    ]
    metadata = [tuple(pairs.items()) for pairs in given * 500]
    stream = loki.Stream({"job": "api", "level": "info"}, list(range(len(metadata))), ["x"] * len(metadata), metadata)
    found, starts = loki.columns([stream])
    assert starts == [0]
    expected = {
        (): ("info", b""),
        (("level", "error"), ("user", "ann")): ("error", b'{"user":"ann"}'),
        (("user", "bob"),): ("info", b'{"user":"bob"}'),
    }
    assert listed(found.severities) == [expected[pairs][0] for pairs in metadata]
    assert found.attributes == [expected[pairs][1] for pairs in metadata]
    assert listed(found.services) == ["api"] * len(metadata)


def test_each_stream_s_entries_get_that_stream_s_fields_after_another_stream_s_sets() -> None:
    streams = [
        loki.Stream({"job": "api", "level": "info"}, [1, 2, 3], ["a", "b", "c"], [(), (("level", "warn"),), ()]),
        loki.Stream({"job": "db"}, [4, 5], ["d", "e"], [(), ()]),
        loki.Stream({"app": "web", "level": "debug"}, [6], ["f"], [(("user", "ann"),)]),
    ]
    found, starts = loki.columns(streams)
    assert starts == [0, 3, 5]
    assert listed(found.services) == ["api", "api", "api", "db", "db", "web"]
    assert listed(found.severities) == ["info", "warning", "info", None, None, "debug"]
    assert found.attributes == [b"", b"", b"", b"", b"", b'{"user":"ann"}']
