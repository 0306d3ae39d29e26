"""Syslog over a stream: octet counting and newline framing, frames split across reads, over-long frames."""

from __future__ import annotations

from loglake.protocols.syslog_framing import StreamFramer, TruncatedFrame, UnfinishedFrame


def counted(message: bytes) -> bytes:
    return b"%d %b" % (len(message), message)


def test_newline_framed_messages_with_crlf_and_blank_lines() -> None:
    framer = StreamFramer(1000)
    assert framer.feed(b"<13>one\r\n\n<13>two\n<13>thr") == [b"<13>one", b"<13>two"]
    assert framer.feed(b"ee\n") == [b"<13>three"]


def test_octet_counted_messages_keep_their_newlines_and_may_split_anywhere() -> None:
    stream = counted(b"<13>1 - - - - - - line one\nline two") + counted(b"<14>second")
    for cut in range(len(stream) + 1):
        framer = StreamFramer(1000)
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert frames == [b"<13>1 - - - - - - line one\nline two", b"<14>second"], cut


def test_one_connection_may_mix_both_framings() -> None:
    framer = StreamFramer(1000)
    stream = b"<13>plain\n" + counted(b"<13>counted\nwith newline") + b"<13>plain again\n"
    assert framer.feed(stream) == [b"<13>plain", b"<13>counted\nwith newline", b"<13>plain again"]


def test_a_line_that_starts_with_digits_but_no_length_is_a_line() -> None:
    framer = StreamFramer(1000)
    assert framer.feed(b"12345678901234 not a count\n") == [b"12345678901234 not a count"]


def test_a_count_above_the_limit_is_read_as_a_line_and_what_follows_is_kept() -> None:
    # (as rsyslog's imtcp past MaxFrameSize: waiting for the claimed bytes swallowed a quiet sender's connection)
    framer = StreamFramer(1000)
    frames = framer.feed(b"999999999 <13>1 - host app - - - claims 1 GB\n<13>1 - host app - - - next\n")
    assert frames == [b"999999999 <13>1 - host app - - - claims 1 GB", b"<13>1 - host app - - - next"]
    framer = StreamFramer(10)  # a real message past the limit: its lines, each cut to the limit, nothing skipped after
    frames = framer.feed(counted(b"<13>" + b"x" * 21)[:20])
    frames += framer.feed(counted(b"<13>" + b"x" * 21)[20:] + b"\n" + counted(b"<13>ok"))
    assert frames == [b"25 <13>xxx", b"<13>ok"]
    assert type(frames[0]) is TruncatedFrame and type(frames[1]) is bytes


def test_digits_and_a_space_before_anything_but_a_pri_start_a_line_not_a_count() -> None:
    # A message's text holding a newline, then "500 Internal Server Error" (logger's newline framing): the 500
    # took the next 500 bytes of the connection, several messages, as one frame.
    framer = StreamFramer(1000)
    stream = b"<11>1 - web app - - - upstream said\n500 Internal Server Error\n"
    stream += b"".join(b"<13>1 - web app - - - following %d\n" % n for n in range(3))
    assert framer.feed(stream) == [
        b"<11>1 - web app - - - upstream said",
        b"500 Internal Server Error",
        *(b"<13>1 - web app - - - following %d" % n for n in range(3)),
    ]
    for cut in (1, 2, 3, 4):  # the byte after the space decides: a read ending before it waits for it
        framer = StreamFramer(1000)
        assert framer.feed(counted(b"<13>a")[:cut]) == [] and framer.feed(counted(b"<13>a")[cut:]) == [b"<13>a"]


def test_a_counted_frame_cut_short_by_the_connection_closing_is_kept_as_far_as_it_came() -> None:
    framer = StreamFramer(1000)
    assert framer.feed(b"<13>whole\n" + counted(b"<13>1 - host app - - - half of it")[:20]) == [b"<13>whole"]
    [unfinished] = framer.finish()
    assert unfinished == b"<13>1 - host app " and type(unfinished) is UnfinishedFrame
    framer = StreamFramer(1000)
    framer.feed(b"<13>no newline at the end")
    assert framer.finish() == [b"<13>no newline at the end"]
    assert framer.finish() == []
    framer = StreamFramer(1000)  # digits that are a line of their own, not a count to wait for
    assert framer.feed(b"123\n") == [b"123"]


def test_an_over_long_line_is_cut_and_the_rest_of_it_skipped() -> None:
    framer = StreamFramer(10)
    frames = framer.feed(b"<13>" + b"y" * 30)
    frames += framer.feed(b"y" * 30 + b"\n<13>next\n")
    assert frames == [b"<13>" + b"y" * 6, b"<13>next"]
    assert type(frames[0]) is TruncatedFrame


def test_the_newline_that_ends_a_counted_frame_is_not_part_of_the_message() -> None:
    framer = StreamFramer(1000)
    assert framer.feed(counted(b"<13>one\n") + counted(b"<13>two\r\n") + counted(b"\n")) == [b"<13>one", b"<13>two"]
