"""Verify AWS Signature Version 4 (``AWS4-HMAC-SHA256``) on incoming HTTP requests.

Lets clients that already sign requests for API Gateway (service ``execute-api``), such as botocore,
authenticate to loglake unchanged. Written from the public specification ("Create a signed AWS API
request"); pure: no I/O, no state, the caller supplies the secret and the clock.

Different signers canonicalise the URI and query slightly differently, so ``verify`` computes the few
legitimate canonical forms of the *same* request bytes and accepts if any of them matches the signature.
Each form maps two requests to the same string only if the application decodes them to the same path and
query parameters, so accepting any of them never lets a changed request through. (A single-encoded URI
form is deliberately not offered: ``/a%2520b`` would then match a signature for ``/a%20b``.)
"""

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote_from_bytes, unquote_to_bytes

from loglake.api.http import quoted

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
DEFAULT_SERVICE = "execute-api"

_AMZ_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
_SCOPE_DATE = re.compile(r"[0-9]{8}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
# RFC 9110 token characters, lower-case only: SigV4 requires lower-cased signed header names.
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_SCOPE_PART = re.compile(r"[A-Za-z0-9._-]+")
# Components are separated by commas (SDKs) or, in some hand-written clients, by whitespace only.
_AUTH_SEPARATOR = re.compile(r"\s*,\s*|\s+")
_SCOPE_FIELDS = 5  # access key id / date / region / service / terminator


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The parts of an incoming request that a SigV4 signature covers, exactly as received."""

    method: str
    raw_path: bytes
    query_string: bytes
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Credential:
    """The fields of a parsed ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


class SigV4Error(Exception):
    """Why a signature was refused; the message is safe to show the client and says what to fix."""


def is_sigv4(authorization: str) -> bool:
    """Tell whether an Authorization header uses the SigV4 scheme, so the caller can route it here."""
    value = authorization.lstrip()
    if not value.startswith(ALGORITHM):
        return False
    rest = value[len(ALGORITHM) :]
    return not rest or rest[0].isspace()


def parse_authorization(authorization: str) -> Credential:
    """Split a SigV4 Authorization header into its credential scope, signed headers and signature.

    Done separately from ``verify`` so the caller can look up the secret for ``access_key_id`` first.
    """
    if not is_sigv4(authorization):
        raise SigV4Error(f"Authorization header must start with {ALGORITHM!r}")
    rest = authorization.strip()[len(ALGORITHM) :].strip()
    if not rest:
        raise SigV4Error("Authorization header has no Credential, SignedHeaders and Signature components")
    fields: dict[str, str] = {}
    for part in _AUTH_SEPARATOR.split(rest):
        name, sep, value = part.partition("=")
        if not sep:
            raise SigV4Error(
                f"malformed Authorization component {quoted(part)}: expected Name=value, "
                "with components separated by commas and no spaces inside values"
            )
        if name not in ("Credential", "SignedHeaders", "Signature"):
            raise SigV4Error(
                f"unexpected Authorization component {quoted(name)}: "
                "expected only Credential, SignedHeaders and Signature"
            )
        if name in fields:
            raise SigV4Error(f"Authorization component {name} appears more than once")
        fields[name] = value
    for name in ("Credential", "SignedHeaders", "Signature"):
        if name not in fields:
            raise SigV4Error(f"Authorization header is missing the {name} component")

    scope = fields["Credential"].rsplit("/", _SCOPE_FIELDS - 1)
    if len(scope) != _SCOPE_FIELDS:
        raise SigV4Error("Credential must have the form <access-key-id>/<YYYYMMDD>/<region>/<service>/aws4_request")
    access_key_id, date, region, service, terminator = scope
    if not access_key_id:
        raise SigV4Error("Credential has an empty access key id")
    if not _SCOPE_DATE.fullmatch(date):
        raise SigV4Error(f"Credential scope date {quoted(date)} is not in YYYYMMDD format")
    if not _SCOPE_PART.fullmatch(region):
        raise SigV4Error(f"Credential scope region {quoted(region)} is empty or malformed")
    if not _SCOPE_PART.fullmatch(service):
        raise SigV4Error(f"Credential scope service {quoted(service)} is empty or malformed")
    if terminator != TERMINATOR:
        raise SigV4Error(f"Credential scope must end with {TERMINATOR!r}, not {quoted(terminator)}")

    signed_headers = tuple(fields["SignedHeaders"].split(";"))
    for header in signed_headers:
        if not _HEADER_NAME.fullmatch(header):
            raise SigV4Error(
                f"SignedHeaders entry {quoted(header)} is not a lower-case header name; "
                "list lower-case names separated by ';'"
            )
    if len(set(signed_headers)) != len(signed_headers):
        raise SigV4Error("SignedHeaders lists a header more than once")

    signature = fields["Signature"]
    if not _SIGNATURE.fullmatch(signature):
        raise SigV4Error("Signature must be 64 hexadecimal characters")
    return Credential(access_key_id, date, region, service, signed_headers, signature.lower())


def check_before_body(
    raw_path: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    credential: Credential,
    *,
    region: str,
    service: str = DEFAULT_SERVICE,
    now: float,
    max_skew_seconds: int = 300,
) -> None:
    """Everything ``verify`` checks that needs neither the secret nor the body: the credential scope,
    the signing time, the signed headers and the path's form. Run before reading a body, so a stale or
    misaddressed request is refused without receiving (and hashing) up to the body limit."""
    _checked_parts(raw_path, headers, credential, region, service, now, max_skew_seconds)


def verify(
    request: SignedRequest,
    credential: Credential,
    secret_key: str,
    *,
    region: str,
    service: str = DEFAULT_SERVICE,
    now: float,
    max_skew_seconds: int = 300,
) -> None:
    """Check that ``request`` was signed with ``secret_key`` within the replay window; raise otherwise.

    ``now`` is the server's Unix time; it is a parameter so this function stays pure and testable.
    """
    headers, amz_date, header_lines = _checked_parts(
        request.raw_path, request.headers, credential, region, service, now, max_skew_seconds
    )
    signed = credential.signed_headers

    body_hash = hashlib.sha256(request.body).hexdigest()
    declared = headers.get(b"x-amz-content-sha256")
    if declared is not None:
        if len(declared) != 1 or declared[0].strip().lower() != body_hash.encode("ascii"):
            raise SigV4Error(
                "body hash mismatch: x-amz-content-sha256 must be the hex SHA-256 of the request body as sent"
            )
        payload_hash = declared[0].strip()
    else:
        payload_hash = body_hash.encode("ascii")

    # Everything after the URI and query is the same for every canonical form; build it once.
    tail = b"\n".join((*header_lines, b"", ";".join(signed).encode("ascii", "replace"), payload_hash))
    scope = f"{credential.date}/{region}/{service}/{TERMINATOR}"
    sts_head = f"{ALGORITHM}\n{amz_date}\n{scope}\n".encode("ascii")
    signing_key = _signing_key(secret_key, credential.date, region, service)
    provided = credential.signature.lower().encode("utf-8", "replace")
    method = request.method.encode("ascii", "replace")

    uris = _unique(_canonical_uris(request.raw_path))
    queries = _unique(_canonical_queries(request.query_string))
    for uri in uris:
        for query in queries:
            canonical = b"\n".join((method, uri, query, tail))
            string_to_sign = sts_head + hashlib.sha256(canonical).hexdigest().encode("ascii")
            expected = hmac.new(signing_key, string_to_sign, hashlib.sha256).hexdigest().encode("ascii")
            if hmac.compare_digest(expected, provided):
                return
    raise SigV4Error(
        "signature does not match: check the secret access key and that the request was not changed after signing"
    )


def _checked_parts(
    raw_path: bytes,
    raw_headers: Sequence[tuple[bytes, bytes]],
    credential: Credential,
    region: str,
    service: str,
    now: float,
    max_skew_seconds: int,
) -> tuple[dict[bytes, list[bytes]], str, list[bytes]]:
    """The checks of check_before_body; the headers by name, the signing time and the canonical header lines."""
    if credential.region != region:
        raise SigV4Error(
            f"Credential scope region {quoted(credential.region)} does not match this endpoint's region "
            f"{region!r}: sign for region {region!r}"
        )
    if credential.service != service:
        raise SigV4Error(
            f"Credential scope service {quoted(credential.service)} does not match this endpoint's service "
            f"{service!r}: sign for service {service!r}"
        )

    headers = _collect_headers(raw_headers)
    signed = credential.signed_headers

    time_header, amz_date, when = _request_time(headers)
    if amz_date[:8] != credential.date:
        raise SigV4Error(
            f"Credential scope date {quoted(credential.date)} does not match the day of the {time_header} "
            f"header ({amz_date[:8]}): use the signing day in the credential scope"
        )
    skew = when.timestamp() - now
    if skew < -max_skew_seconds:
        raise SigV4Error(
            f"request signature has expired: {time_header} {amz_date} is more than {max_skew_seconds} "
            "seconds in the past; sign the request again with the current time"
        )
    if skew > max_skew_seconds:
        raise SigV4Error(
            f"request signature is not yet valid: {time_header} {amz_date} is more than "
            f"{max_skew_seconds} seconds in the future; check the client's clock"
        )

    if "host" not in signed:
        raise SigV4Error("the host header must be listed in SignedHeaders")
    if time_header not in signed:
        raise SigV4Error(f"the {time_header} header must be listed in SignedHeaders")
    header_lines = []
    for name in signed:
        raw_name = name.encode("ascii", "replace")
        values = headers.get(raw_name)
        if values is None:
            raise SigV4Error(f"signed header {quoted(name)} is listed in SignedHeaders but missing from the request")
        # Trim each value and collapse inner whitespace runs; join repeated headers with commas.
        header_lines.append(raw_name + b":" + b",".join(b" ".join(v.split()) for v in values))

    # Signers sign the path with dot and empty segments removed. The application routes on the path as
    # sent, so accepting such segments would let a captured request be re-aimed (``/a/x/../b`` for ``/a/b``).
    if raw_path and _normalize_path(raw_path) != raw_path:
        raise SigV4Error("request path contains empty, '.' or '..' segments: send the path in its normalised form")
    return headers, amz_date, header_lines


def _collect_headers(pairs: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """Group raw header pairs by lower-cased name, keeping repeated values in the order received."""
    headers: dict[bytes, list[bytes]] = {}
    for name, value in pairs:
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _request_time(headers: dict[bytes, list[bytes]]) -> tuple[str, str, datetime]:
    """Find the signing time: x-amz-date, or failing that the Date header (ISO 8601 basic or HTTP-date).

    Returns the header used, the time as YYYYMMDD'T'HHMMSS'Z' (the form the string to sign uses) and
    the time itself.
    """
    name = "x-amz-date"
    values = headers.get(b"x-amz-date")
    if values is None:
        name = "date"
        values = headers.get(b"date")
    if values is None:
        raise SigV4Error("missing x-amz-date header: send the signing time as YYYYMMDD'T'HHMMSS'Z'")
    if len(values) != 1:
        raise SigV4Error(f"the {name} header must appear exactly once")
    text = values[0].decode("latin-1").strip()
    match = _AMZ_DATE.fullmatch(text)
    if match is not None:
        year, month, day, hour, minute, second = (int(group) for group in match.groups())
        try:
            when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            raise SigV4Error(f"the {name} header {quoted(text)} is not a valid date and time") from None
        return name, text, when
    if name == "date":
        # botocore and older signers put an RFC 9110 HTTP-date in Date; the signature still uses ISO basic.
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and (when.tzinfo is None or when.utcoffset() == timedelta(0)):
            when = when.replace(tzinfo=UTC)
            return name, when.strftime("%Y%m%dT%H%M%SZ"), when
    raise SigV4Error(f"the {name} header {quoted(text)} is not in YYYYMMDD'T'HHMMSS'Z' format")


def _signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """Derive the scoped signing key (the spec's HMAC chain), so the raw secret never signs directly."""
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _unique(items: Iterable[bytes]) -> list[bytes]:
    """Drop repeated candidates, keeping the first-seen order (the most common form first)."""
    return list(dict.fromkeys(items))


def _uri_encode(raw: bytes) -> bytes:
    """Percent-encode everything except RFC 3986 unreserved characters, with upper-case hex."""
    return quote_from_bytes(raw, safe="").encode("ascii")


def _normalize_path(path: bytes) -> bytes:
    """Remove '.', '..' and empty segments the way signers do before signing (every service but S3).

    ``verify`` uses it only to refuse paths it would change; see the comment there.
    """
    segments: list[bytes] = []
    for segment in path.split(b"/"):
        if segment in (b"", b"."):
            continue
        if segment == b"..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    lead = b"/" if path.startswith(b"/") else b""
    trail = b"/" if path.endswith(b"/") and segments else b""
    return (lead + b"/".join(segments) + trail) or b"/"


def _canonical_uris(raw_path: bytes) -> Iterable[bytes]:
    """Yield the canonical URI forms signers produce for this path.

    1. botocore: the path as sent, percent-encoded once more keeping only '/' and '~' (and unreserved
       characters) as they are, so an already-encoded ``%20`` becomes ``%2520``.
    2. The specification: decode each segment, encode it with only unreserved characters kept, then
       encode that again (the double encoding every service except S3 uses).
    """
    path = raw_path or b"/"  # verify() has refused paths that normalisation would change
    yield quote_from_bytes(path, safe="/~").encode("ascii")
    yield b"/".join(_uri_encode(unquote_to_bytes(segment)).replace(b"%", b"%25") for segment in path.split(b"/"))


def _canonical_queries(query: bytes) -> Iterable[bytes]:
    """Yield the canonical query string forms signers produce for this query.

    1. botocore: the raw ``k=v`` pairs sorted as sent, with no re-encoding.
    2. The specification: each key and value decoded then encoded with only unreserved characters kept,
       sorted by encoded key then value.
    """
    if not query:
        yield b""
        return
    pairs = [(key, value) for key, _, value in (pair.partition(b"=") for pair in query.split(b"&"))]
    yield b"&".join(key + b"=" + value for key, value in sorted(pairs))
    yield _encoded_query(pairs)


def _encoded_query(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Build the specification's canonical query string from raw ``k=v`` pairs.

    A raw '+' is decoded as a space, as the application's form decoding reads it; otherwise a request
    signed with a literal ``%2B`` could be replayed with ``+`` and mean something else.
    """
    encoded = [
        (
            _uri_encode(unquote_to_bytes(key.replace(b"+", b" "))),
            _uri_encode(unquote_to_bytes(value.replace(b"+", b" "))),
        )
        for key, value in pairs
    ]
    return b"&".join(key + b"=" + value for key, value in sorted(encoded))
