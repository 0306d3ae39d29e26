"""Syslog over a stream: octet counting and newline framing, frames split across reads, over-long frames."""

from __future__ import annotations

from loglake.protocols.syslog_framing import StreamFramer, TruncatedFrame


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


def test_an_over_long_counted_frame_is_cut_and_the_rest_skipped() -> None:
    framer = StreamFramer(10)
    frames = framer.feed(counted(b"x" * 25)[:20])
    frames += framer.feed(counted(b"x" * 25)[20:] + counted(b"<13>ok"))
    assert frames == [b"x" * 10, b"<13>ok"]
    assert type(frames[0]) is TruncatedFrame and type(frames[1]) is bytes


def test_an_over_long_line_is_cut_and_the_rest_of_it_skipped() -> None:
    framer = StreamFramer(10)
    frames = framer.feed(b"<13>" + b"y" * 30)
    frames += framer.feed(b"y" * 30 + b"\n<13>next\n")
    assert frames == [b"<13>" + b"y" * 6, b"<13>next"]
    assert type(frames[0]) is TruncatedFrame


def test_the_newline_that_ends_a_counted_frame_is_not_part_of_the_message() -> None:
    framer = StreamFramer(1000)
    assert framer.feed(counted(b"<13>one\n") + counted(b"<13>two\r\n") + counted(b"\n")) == [b"<13>one", b"<13>two"]
