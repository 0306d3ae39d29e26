"""Loki's mapping of a stream's entries, whose structured metadata repeats a few sets: each entry gets its own
set's record, whichever sets change a field and in whatever order they come."""

from __future__ import annotations

import cramjam

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


def test_structured_metadata_pairs_too_large_to_keep_for_later_pushes_are_read_as_small_ones_are() -> None:
    values = ["ann", "x" * 2000, "ann"]
    request = loki.PushRequest()
    stream = request.streams.add(labels='{job="api"}')
    for value in values:
        entry = stream.entries.add(line="l")
        entry.timestamp.seconds = 1_700_000_000
        entry.structuredMetadata.add(name="user", value=value)
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    for _ in range(2):  # (the second push reads the small pair kept from the first)
        found, _ = loki.columns(loki.decode_push(body, json=False))
        assert found.attributes == [b'{"user":"%s"}' % value.encode() for value in values]


def test_a_label_of_an_empty_value_is_none_as_loki_reads_a_label_set() -> None:
    """Loki drops it (an empty value is an absent label): `service_name=""` took the service (none: the default)
    before `app`, and stayed in the attributes."""
    streams = [
        loki.Stream({"service_name": "", "app": "web", "env": ""}, [1], ["a"], [()]),
        loki.Stream({"service_name": "", "app": "web"}, [2], ["b"], [(("user", "ann"),)]),
        loki.Stream(loki.parse_labels('{job="", level="warn"}'), [3], ["c"], [()]),
    ]
    found, _ = loki.columns(streams)
    assert listed(found.services) == ["web", "web", None]
    assert listed(found.severities) == [None, None, "warning"]
    assert found.attributes == [b"", b'{"user":"ann"}', b""]
