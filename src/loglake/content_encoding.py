"""A request body with its Content-Encoding undone, wherever that is done: the HTTP edge (http.decode_content)
and the decode workers (decode_workers.py), which take a body as sent."""

from __future__ import annotations

import codecs

from isal import isal_zlib

GZIP_ENCODINGS = ("gzip", "x-gzip")
_GZIP_MAGIC = b"\x1f\x8b"


class NotInflated(ValueError):
    """The body is not valid gzip (the message says how), or inflates past the limit (`too_large`)."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def decoded(body: bytes, gzip: bool, max_bytes: int) -> bytes:
    """The body inflated when `gzip` (NotInflated if it cannot be, within max_bytes), without a leading UTF-8
    byte order mark: RFC 8259 lets a parser ignore it, and Windows editors write one. A gzipped body sent without
    its Content-Encoding is NotInflated, told so: each protocol's parser said only that it could not read it
    (`invalid character (byte 0)`, `Wire format was corrupt`); no JSON, protobuf or text body starts with gzip's
    magic bytes."""
    if not gzip and body.startswith(_GZIP_MAGIC):
        raise NotInflated("the body is gzip-compressed but the request does not say so: add Content-Encoding: gzip")
    return (_inflate(body, max_bytes) if gzip else body).removeprefix(codecs.BOM_UTF8)


def _inflate(body: bytes, max_bytes: int) -> bytes:
    """Stopping a decompression bomb while inflating, not after. A body of several gzip members (files gzipped one
    by one and sent as one, `cat a.gz b.gz`, or a writer that gzips each piece it appends) is all of them, as gzip
    and Go's and Java's readers read it: reading the first alone answered the others' records stored and dropped
    them. NUL bytes after the last member (padding) are ignored, as gzip ignores them; other bytes are refused."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:
        if not rest.startswith(_GZIP_MAGIC):  # (ISA-L waits for a whole header before it judges one)
            if parts:
                raise NotInflated(f"the body is not valid gzip: {len(rest)} bytes after its gzip data are not gzip")
            raise NotInflated("the body is not valid gzip: it does not start with gzip's magic bytes 1f 8b")
        # ISA-L's inflate, zlib's format and interface at over twice its speed (OTLP exporters gzip by default):
        # a gzipped body's inflating took a tenth of the CPU of mapping its records.
        inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, max_bytes - size + 1)
        except isal_zlib.error as e:
            raise NotInflated(f"the body is not valid gzip: {e}") from None
        size += len(part)
        if size > max_bytes or inflater.unconsumed_tail:
            raise NotInflated(f"the body inflates past {max_bytes} bytes", too_large=True)
        if not inflater.eof:
            raise NotInflated("the gzip body is truncated")
        parts.append(part)
        rest = inflater.unused_data
        if not rest.strip(b"\0"):
            return parts[0] if len(parts) == 1 else b"".join(parts)
