"""Syslog over a byte stream (RFC 6587) to whole messages. Pure, no I/O.

A sender frames each message either by octet counting (`LEN SP MSG`, RFC 5425/6587 3.4.1: the message
may hold newlines) or by a trailing newline (non-transparent framing, 3.4.2: what `logger` and most
3164 senders do). Each frame says which by its first bytes: digits, a space and the `<` that starts every
syslog message (its PRI) make a count, anything else a line, so one connection may even mix them.

What looks like a count and is none is read as a line, so that nothing after it is lost: digits and a space
followed by anything but `<` (a newline-framed message whose text holds a newline and then "500 Internal
Server Error" would otherwise take the next 500 bytes of the connection as one frame), and a count above the
frame limit (as rsyslog's imtcp falls back to newline framing past its MaxFrameSize: waiting for a claimed
gigabyte would swallow everything a quiet sender sends after it). A line larger than the limit is cut to it
(a TruncatedFrame) and the rest of it skipped, so a sender cannot make the listener hold an unbounded
buffer; a counted frame the sender closed the connection in the middle of is kept as far as it came (an
UnfinishedFrame).
"""

from __future__ import annotations

import re

_LENGTH_DIGITS = 10  # an octet count longer than this is not one
_DIGIT_AFTER_NEWLINE = re.compile(rb"\n[0-9]")


class TruncatedFrame(bytes):
    """The first bytes of a frame that was longer than the limit (the rest was skipped)."""


class UnfinishedFrame(bytes):
    """The bytes of a counted frame that came before its connection closed (fewer than its count)."""


_PRI_START = ord("<")
_LINE_ENDS = (b"\n", b"\r", b"\r\n")  # (or its first part, arrived alone)


class StreamFramer:
    """Feed it what a connection reads; it gives back the complete messages, keeping partial ones."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = b""
        self._skip_line = False  # dropping the rest of an over-long line

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        frames: list[bytes] = []
        position, end = 0, len(buffer)
        while position < end:
            if self._skip_line:
                newline = buffer.find(b"\n", position)
                if newline < 0:
                    position = end
                    break
                self._skip_line = False
                position = newline + 1
                continue
            first = buffer[position]
            if 48 <= first <= 57:
                counted = self._counted(buffer, position, frames)
                if counted is None:  # wait for more bytes
                    break
                if counted >= 0:
                    position = counted
                    continue
            position, waiting = self._lines(buffer, position, frames)
            if waiting:
                break
        self._buffer = buffer[position:]
        return frames

    def finish(self) -> list[bytes]:
        """The messages still held when the connection ends: a last line without its newline, and what came
        of a counted frame the sender closed in the middle of (an UnfinishedFrame, its count left out)."""
        frames = self.feed(b"\n")
        rest, self._buffer = self._buffer[:-1], b""  # (the newline fed above)
        if rest:
            digits, _, message = rest.partition(b" ")
            frames.append(UnfinishedFrame(message if message.startswith(b"<") and digits.isdigit() else rest))
        return frames

    def _counted(self, buffer: bytes, position: int, frames: list[bytes]) -> int | None:
        """One octet-counted frame: the position after it, None to wait for more bytes, -1 when what starts
        with digits is no count (see the module's docstring: the line is then taken as newline-framed)."""
        space = buffer.find(b" ", position, position + _LENGTH_DIGITS + 1)
        if space < 0:
            newline = buffer.find(b"\n", position, position + _LENGTH_DIGITS + 1)
            return None if newline < 0 and len(buffer) - position <= _LENGTH_DIGITS else -1
        digits = buffer[position:space]
        if not digits.isdigit():
            return -1
        length = int(digits)
        start = space + 1
        if length > self.max_frame_bytes:
            return -1
        if length and len(buffer) == start:
            return None  # (the message's first byte tells a count from a line)
        if length and buffer[start] != _PRI_START and buffer[start : start + length] not in _LINE_ENDS:
            return -1  # (a frame of a line end alone: rsyslog's template around an empty message)
        if len(buffer) - start < length:
            return None
        frame = buffer[start : start + length]
        if frame.endswith(b"\n"):  # rsyslog's RFC 5424 template ends in a newline, counted with the message
            frame = frame[:-2] if frame.endswith(b"\r\n") else frame[:-1]
        if frame:
            frames.append(frame)
        return start + length

    def _lines(self, buffer: bytes, position: int, frames: list[bytes]) -> tuple[int, bool]:
        """Newline-framed messages from `position`: the position after them, and whether an incomplete
        line is left to wait for. Runs of lines go through one split."""
        last = buffer.rfind(b"\n", position)
        if last < 0:
            if len(buffer) - position > self.max_frame_bytes:
                frames.append(TruncatedFrame(buffer[position : position + self.max_frame_bytes]))
                self._skip_line = True
                return len(buffer), True
            return position, True
        run_end = last
        digit = _DIGIT_AFTER_NEWLINE.search(buffer, position, last)
        if digit is not None:  # an octet-counted frame follows: lines up to it only
            run_end = digit.start()
        for line in buffer[position:run_end].split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                if len(line) > self.max_frame_bytes:
                    line = TruncatedFrame(line[: self.max_frame_bytes])
                frames.append(line)
        return run_end + 1, False
