"""Shipping a stream of log lines to a loglake server, for `loglake send`: nothing read is lost.

Reading. Lines are read in the calling thread, straight from the stream's file descriptor, waiting with
select() so that a batch that is due leaves while the input is quiet (`tail -f`). So every line read is
in the shipper's hands, and while a batch is on its way the input waits in the pipe (whose writer blocks
when it is full: a pipe's own back-pressure). A stream that select() cannot wait on (a test's in-memory
stream, a pipe on Windows) is read with blocking reads instead.

Sending. A batch leaves when it is full (records or bytes) or when its first line has waited `max_wait`
seconds. While the server cannot be reached or answers "not now", the client sends it again with
growing pauses. Records the server refuses (a 400 names each by its index) are reported with their line
number and dropped, and the rest sent again; a batch refused as a whole (413 too large, a 500, a 400
naming no record) is halved until the culprit is alone. At the end of the input, or on stop() (Ctrl-C,
SIGTERM), what was read is sent before ship() returns.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import msgspec

from loglake.client import ClientError, LoglakeClient, OnRetry
from loglake.line_records import INVALID_UTF8, line_to_record
from loglake.retry import TryAgain

CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 8 * 1024 * 1024  # longer lines are skipped (and reported): no record holds that much
MAX_BATCH_BYTES = 4 * 1024 * 1024  # of NDJSON; the server takes 10 MiB by default
SERVER_ERROR_ATTEMPTS = 3  # a lone record answered 500 is tried this often before it is reported
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_encode = msgspec.json.Encoder().encode


class CompressedInput(ValueError):
    """The input is gzip: its lines would be stored as one record of binary garbage (`loglake send < app.ndjson.gz`
    stored that, exit status 0), so nothing of it is sent."""

    def __init__(self) -> None:
        super().__init__(
            "the input is gzip-compressed: nothing was sent; decompress it into loglake send,"
            " e.g. `zcat FILE.gz | loglake send`"
        )


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, in the input
    text: str | None  # None: longer than the reader's max_line_bytes, not kept
    read_ms: int  # when it was read: the time of a record that gives none
    invalid_utf8: bool = False  # bytes that are no UTF-8 were replaced by U+FFFD in text


def decode_line(data: bytes, number: int, read_ms: int) -> Line:
    """The line of these bytes; bytes that are no UTF-8 become U+FFFD, and the line says so."""
    try:
        return Line(number, data.decode("utf-8"), read_ms)
    except UnicodeDecodeError:
        return Line(number, data.decode("utf-8", errors="replace"), read_ms, invalid_utf8=True)


class LineReader:
    """The lines of a byte stream, read a chunk at a time."""

    def __init__(self, stream: BinaryIO, clock_ms: Callable[[], int], max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._stream = stream
        self.max_line_bytes = max_line_bytes
        self._fd = _selectable_fd(stream)
        self._clock_ms = clock_ms
        self._partial = bytearray()
        self._too_long = False  # the current line passed MAX_LINE_BYTES: the rest of it is dropped
        self.lines = 0
        self.bytes_read = 0
        self.eof = False

    def wait(self, timeout: float | None) -> bool:
        """Whether input (or its end) is ready within `timeout` seconds (None: however long it takes)."""
        if self._fd is None:
            return True
        return bool(select.select([self._fd], [], [], timeout)[0])

    def read(self) -> list[Line]:
        """The lines completed by one read (after wait() said so, it does not block); the last line
        needs no newline at the end of the input."""
        if self._fd is not None:
            chunk = os.read(self._fd, CHUNK_BYTES)
        else:
            chunk = getattr(self._stream, "read1", self._stream.read)(CHUNK_BYTES)
        now_ms = self._clock_ms()
        if not chunk:
            self.eof = True
            ended = self._partial or self._too_long
            return [self._line(b"", now_ms)] if ended else []
        if self.bytes_read == 0 and chunk.startswith(_BOM):
            chunk = chunk[len(_BOM) :]
        elif self.bytes_read == 0 and chunk.startswith(_GZIP_MAGIC):  # (no text starts so: 0x8b is no first byte)
            raise CompressedInput
        self.bytes_read += len(chunk)
        *complete, rest = chunk.split(b"\n")
        lines = [self._line(piece, now_ms) for piece in complete]
        if not self._too_long:
            self._partial += rest
            if len(self._partial) > self.max_line_bytes:
                self._partial.clear()
                self._too_long = True
        return lines

    def _line(self, end: bytes, now_ms: int) -> Line:
        self.lines += 1
        if self._too_long or len(self._partial) + len(end) > self.max_line_bytes:
            self._partial.clear()
            self._too_long = False
            return Line(self.lines, None, now_ms)
        data = bytes(self._partial + end) if self._partial else end
        self._partial.clear()
        return decode_line(data, self.lines, now_ms)


def _selectable_fd(stream: BinaryIO) -> int | None:
    try:
        fd = stream.fileno()
        select.select([fd], [], [], 0)
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return fd


class _Stopped(Exception):
    """Raised by stop() while the shipper waits for input."""


@dataclass
class Tally:
    records: int = 0  # made from the lines read
    sent: int = 0  # stored by the server
    refused: int = 0  # reported and skipped

    @property
    def unsent(self) -> int:
        return self.records - self.sent - self.refused


class Shipper:
    """Records from lines, sent in batches. on_refused(line number, reason) reports a line that cannot be
    stored; on_changed(line number, what) a line stored with a change (a message cut to fit, invalid
    UTF-8 replaced, a time it cannot use replaced by the time read); on_sent(line numbers, log ids)
    follows each stored batch; on_retry(error, pause) each pause."""

    def __init__(
        self,
        client: LoglakeClient,
        defaults: Mapping[str, str],
        *,
        batch_size: int,
        max_wait: float,
        give_up_after: float | None,
        on_refused: Callable[[int, str], None],
        on_changed: Callable[[int, str], None] | None = None,
        on_sent: Callable[[list[int], list[str]], None] | None = None,
        on_retry: OnRetry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.defaults = dict(defaults)
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.give_up_after = give_up_after
        self.on_refused = on_refused
        self.on_changed = on_changed
        self.on_sent = on_sent
        self.on_retry = on_retry
        self.clock = clock
        self.tally = Tally()
        # (line number, record as JSON, when it was added): read and not yet sent
        self._pending: list[tuple[int, bytes, float]] = []
        self._pending_bytes = 0
        self._waiting = False
        self._stopping = False

    def ship(self, reader: LineReader) -> None:
        """Read and send until the input ends or stop() is called; then send what was read."""
        try:
            while not reader.eof:
                timeout = max(0.0, self._pending[0][2] + self.max_wait - self.clock()) if self._pending else None
                if self._wait(reader, timeout):
                    for line in reader.read():
                        self.add(line)
                    self.flush(only_full=True)
                else:  # the oldest pending record waited max_wait
                    self.flush()
        except _Stopped:
            pass
        except OSError:  # the input broke: what was read still goes
            self.flush()
            raise
        self.flush()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Make ship() send what it read and return, at once if it is waiting for input, else when the
        batch on its way is sent. Asked a second time, it gives up on what is unsent (KeyboardInterrupt).
        Meant for signal handlers: it raises in the main thread, where ship() runs."""
        if self._stopping:
            raise KeyboardInterrupt
        self._stopping = True
        if self._waiting:
            raise _Stopped

    def add(self, line: Line) -> None:
        """Add a line's record to the pending batch (a line too long is reported instead)."""
        if line.text is None:
            self.tally.records += 1
            self._refuse(line.number, "the line is too long to be a record")
            return
        changes: list[str] = []
        record = line_to_record(line.text, self.defaults, line.read_ms, line.invalid_utf8, changes)
        if record is None:
            return
        if line.invalid_utf8:
            changes.insert(0, f"bytes that are no UTF-8 replaced by U+FFFD (the record has {INVALID_UTF8}: true)")
        if self.on_changed is not None:
            for change in changes:
                self.on_changed(line.number, change)
        encoded = _encode(record)
        self._pending.append((line.number, encoded, self.clock()))
        self._pending_bytes += len(encoded) + 1
        self.tally.records += 1

    def _wait(self, reader: LineReader, timeout: float | None) -> bool:
        self._waiting = True
        try:
            if self._stopping:
                raise _Stopped
            return reader.wait(timeout)
        finally:
            self._waiting = False

    def flush(self, only_full: bool = False) -> None:
        """Send the pending records in batches (only_full: only while a full batch is pending)."""
        while self._pending:
            if only_full and len(self._pending) < self.batch_size and self._pending_bytes < MAX_BATCH_BYTES:
                return
            count, size = 0, 0
            for _, encoded, _ in self._pending[: self.batch_size]:
                if count and size + len(encoded) + 1 > MAX_BATCH_BYTES:
                    break
                count, size = count + 1, size + len(encoded) + 1
            self._deliver([(number, encoded) for number, encoded, _ in self._pending[:count]])
            del self._pending[:count]
            self._pending_bytes -= size

    def _deliver(self, batch: list[tuple[int, bytes]]) -> None:
        """Store the batch, less the records the server refuses (reported); raises ClientError when
        the server cannot take it at all (bad key, gave up waiting for it)."""
        try:
            ids = self._send(batch)
        except ClientError as e:
            refused = _refused_records(e, len(batch))
            if refused:
                for index, reason in refused.items():
                    self._refuse(batch[index][0], reason)
                rest = [item for index, item in enumerate(batch) if index not in refused]
                if rest:
                    self._deliver(rest)
            elif e.status in (400, 413, 500) and len(batch) > 1:
                middle = len(batch) // 2
                self._deliver(batch[:middle])
                self._deliver(batch[middle:])
            elif e.status in (400, 413, 500):
                self._refuse(batch[0][0], str(e))
            else:
                raise
            return
        self.tally.sent += len(ids)
        if self.on_sent is not None:
            self.on_sent([number for number, _ in batch], ids)

    def _send(self, batch: list[tuple[int, bytes]]) -> list[bytes]:
        """The batch's ids. A lone record the server fails on (500) is tried SERVER_ERROR_ATTEMPTS
        times in all (the failure may pass), through the one retry helper."""

        def attempt() -> list[bytes]:
            try:
                return self.client.send(
                    [encoded for _, encoded in batch], give_up_after=self.give_up_after, on_retry=self.on_retry
                )
            except ClientError as e:
                if e.status == 500 and len(batch) == 1:
                    raise TryAgain(e) from None
                raise

        return self.client.backoff.run(attempt, attempts=SERVER_ERROR_ATTEMPTS, on_retry=self.on_retry)

    def _refuse(self, line_number: int, reason: str) -> None:
        self.tally.refused += 1
        self.on_refused(line_number, reason)


def _refused_records(error: ClientError, count: int) -> dict[int, str]:
    """Index -> reason of every record a 400 names, or {} when it does not name records of the batch."""
    if error.status != 400 or not error.details:
        return {}
    reasons: dict[int, list[str]] = {}
    for detail in error.details:
        index = detail.get("index") if isinstance(detail, dict) else None
        if type(index) is not int or not 0 <= index < count:
            return {}
        field = detail.get("field")
        reasons.setdefault(index, []).append(f"{field}: {detail.get('reason')}" if field else str(detail.get("reason")))
    return {index: "; ".join(found) for index, found in reasons.items()}
