"""SigV4 verification against requests signed by botocore's real signer (the client our users run)."""

import dataclasses
import datetime as dt
import gzip
import hashlib
import json
from typing import Any
from unittest import mock
from urllib.parse import quote, quote_plus, urlencode, urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.api.sigv4 import Credential, SignedRequest, SigV4Error, is_sigv4, parse_authorization, verify

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
SERVICE = "execute-api"
BASE = "https://abc123.execute-api.us-east-1.amazonaws.com"
# botocore's clock returns naive UTC datetimes; sign at a fixed instant and verify with now=NOW.
SIGNED_AT = dt.datetime(2024, 5, 17, 12, 30, 45)
NOW = SIGNED_AT.replace(tzinfo=dt.UTC).timestamp()


@dataclasses.dataclass(frozen=True)
class Signed:
    request: SignedRequest
    authorization: str


def _host(url: str) -> str:
    """The Host header an HTTP client sends for url (botocore signs the same value)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def sign(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    repeated: tuple[tuple[str, str], ...] = (),
    params: dict[str, str] | None = None,
    when: dt.datetime = SIGNED_AT,
    secret: str = SECRET,
    region: str = REGION,
    service: str = SERVICE,
) -> Signed:
    """Sign with botocore and return what an ASGI server would hand us for that request."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {}, params=params or {})
    for name, value in repeated:
        request.headers[name] = value  # HTTPHeaders appends: a repeated header
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        SigV4Auth(Credentials(AKID, secret), service, region).add_auth(request)
    prepared = request.prepare()
    # The prepared request's headers collapse repeats, so take the signed request's headers in order and
    # add what preparation added (Content-Length), plus the Host header the HTTP client sends.
    wire = [(name.lower(), value) for name, value in request.headers.items()]
    names = {name for name, _ in wire}
    wire += [(name.lower(), value) for name, value in prepared.headers.items() if name.lower() not in names]
    if "host" not in names:
        wire.append(("host", _host(prepared.url)))
    parts = urlsplit(prepared.url)
    signed = SignedRequest(
        method=prepared.method,
        raw_path=(parts.path or "/").encode(),
        query_string=parts.query.encode(),
        headers=[(name.encode(), value.encode()) for name, value in wire],
        body=prepared.body or b"",
    )
    return Signed(signed, request.headers["Authorization"])


def check(signed: Signed, *, secret: str = SECRET, now: float = NOW, **kwargs: Any) -> None:
    verify(signed.request, parse_authorization(signed.authorization), secret, region=REGION, now=now, **kwargs)


def with_headers(signed: Signed, **changes: str) -> Signed:
    """Replace (or with an empty string, drop) headers of an already signed request."""
    headers = [(n, v) for n, v in signed.request.headers if n.decode().replace("-", "_") not in changes]
    headers += [(name.replace("_", "-").encode(), v.encode()) for name, v in changes.items() if v]
    return dataclasses.replace(signed, request=dataclasses.replace(signed.request, headers=headers))


def with_request(signed: Signed, **changes: Any) -> Signed:
    return dataclasses.replace(signed, request=dataclasses.replace(signed.request, **changes))


def with_authorization(signed: Signed, old: str, new: str) -> Signed:
    assert old in signed.authorization
    return dataclasses.replace(signed, authorization=signed.authorization.replace(old, new))


def header(signed: Signed, name: bytes) -> bytes:
    return next(v for n, v in signed.request.headers if n == name)


# --- accepted requests ---------------------------------------------------------------------------------


def test_post_json_body() -> None:
    body = json.dumps({"logs": [{"msg": "hello", "level": "info"}]}).encode()
    check(sign("POST", f"{BASE}/logs", body, {"Content-Type": "application/json"}))


@pytest.mark.parametrize("quote_via", [quote, quote_plus], ids=["percent20", "plus"])
def test_get_with_query_needing_encoding_and_repeated_keys(quote_via: Any) -> None:
    query = urlencode(
        [("q", "level:error AND svc:api"), ("tag", "b"), ("tag", "a"), ("from", "2024-05-17T12:00:00Z")],
        quote_via=quote_via,
    )
    signed = sign("GET", f"{BASE}/logs/search?{query}")
    assert b"%3A" in signed.request.query_string
    check(signed)


def test_query_signed_from_params_in_spec_form() -> None:
    # With params=, botocore signs the spec's encoded form but sends spaces as '+'.
    signed = sign("GET", f"{BASE}/logs", params={"q": "a b:c", "limit": "10", "~x": "y*"})
    assert b"+" in signed.request.query_string
    check(signed)


def test_path_with_encoded_segment() -> None:
    signed = sign("GET", f"{BASE}/logs/abc%20def")
    assert signed.request.raw_path == b"/logs/abc%20def"
    check(signed)


def test_path_and_query_reencoded_in_transit_still_verify() -> None:
    # The spec's canonical form decodes before encoding, so an equivalent encoding of the same resource
    # (lower-case hex, an escaped unreserved character, '+' for a space) verifies too.
    signed = sign("GET", f"{BASE}/logs/a~b/c%3Ad?q=x%20y")
    check(with_request(signed, raw_path=b"/logs/a%7eb/c%3ad", query_string=b"q=x+y"))


def test_empty_path_and_non_default_port() -> None:
    signed = sign("GET", "http://localhost:8080")
    assert header(signed, b"host") == b"localhost:8080"
    assert signed.request.raw_path == b"/"
    check(signed)


def test_signed_content_sha256_header() -> None:
    body = b'{"msg":"hello"}'
    signed = sign("POST", f"{BASE}/logs", body, {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    assert "x-amz-content-sha256" in parse_authorization(signed.authorization).signed_headers
    check(signed)


def test_gzip_body_is_verified_as_sent() -> None:
    body = gzip.compress(b'{"msg":"compressed"}\n' * 50)
    signed = sign("POST", f"{BASE}/logs", body, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    check(signed)


def test_date_header_instead_of_x_amz_date() -> None:
    # botocore rewrites an existing Date header as an HTTP-date and then signs it instead of X-Amz-Date.
    signed = sign("GET", f"{BASE}/logs", headers={"Date": "placeholder"})
    assert header(signed, b"date") == b"Fri, 17 May 2024 12:30:45 -0000"
    assert all(name != b"x-amz-date" for name, _ in signed.request.headers)
    check(signed)


def test_repeated_and_padded_signed_headers() -> None:
    signed = sign("POST", f"{BASE}/logs", b"{}", repeated=(("X-Log-Tag", "a   b"), ("X-Log-Tag", " c ")))
    check(signed)
    swapped = [(n, v) for n, v in signed.request.headers if n != b"x-log-tag"]
    swapped += [(b"x-log-tag", b" c "), (b"x-log-tag", b"a   b")]
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_request(signed, headers=swapped))


def test_skew_window_is_inclusive() -> None:
    signed = sign("GET", f"{BASE}/logs")
    check(signed, now=NOW + 300)
    check(signed, now=NOW - 300)
    check(signed, now=NOW + 30, max_skew_seconds=30)


def test_session_token_header_is_just_another_signed_header() -> None:
    request = AWSRequest(method="GET", url=f"{BASE}/logs")
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=SIGNED_AT):
        SigV4Auth(Credentials(AKID, SECRET, "session-token"), SERVICE, REGION).add_auth(request)
    headers = [(n.lower().encode(), v.encode()) for n, v in request.headers.items()]
    signed = SignedRequest("GET", b"/logs", b"", [*headers, (b"host", _host(BASE).encode())], b"")
    verify(signed, parse_authorization(request.headers["Authorization"]), SECRET, region=REGION, now=NOW)


# --- refused requests ----------------------------------------------------------------------------------


@pytest.fixture
def posted() -> Signed:
    return sign("POST", f"{BASE}/logs/abc?stream=app&level=info", b'{"msg":"hello"}', {"X-Tenant": "acme"})


def test_tampered_body(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_request(posted, body=b'{"msg":"hellO"}'))


def test_tampered_path(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_request(posted, raw_path=b"/logs/abd"))


def test_encoding_level_of_path_is_not_ambiguous() -> None:
    # /logs/a%20b is "a b"; /logs/a%2520b is "a%20b" and, in a path, /logs/a+b is "a+b": other resources.
    signed = sign("GET", f"{BASE}/logs/a%20b")
    for path in (b"/logs/a%2520b", b"/logs/a+b"):
        with pytest.raises(SigV4Error, match="signature does not match"):
            check(with_request(signed, raw_path=path))


@pytest.mark.parametrize(
    "query",
    [b"stream=app&level=debug", b"stream=app&level=info&admin=1", b"stream=app", b"stream=app&level=info&"],
    ids=["changed-value", "added-param", "removed-param", "trailing-ampersand"],
)
def test_tampered_query(posted: Signed, query: bytes) -> None:
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_request(posted, query_string=query))


@pytest.mark.parametrize("changes", [{"x_tenant": "evil"}, {"host": "attacker.example.com"}])
def test_tampered_signed_header(posted: Signed, changes: dict[str, str]) -> None:
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_headers(posted, **changes))


def test_tampered_method(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_request(posted, method="PUT"))


@pytest.mark.parametrize("path", [b"/logs/x/../abc", b"/logs/./abc", b"/logs//abc", b"//logs/abc"])
def test_path_segments_removed_by_normalisation_are_refused(posted: Signed, path: bytes) -> None:
    # All of these sign like /logs/abc, but the application would route on the path as sent.
    with pytest.raises(SigV4Error, match="path contains empty"):
        check(with_request(posted, raw_path=path))


def test_literal_plus_cannot_be_replayed_as_space() -> None:
    signed = sign("GET", f"{BASE}/logs?q=a%2Bb")
    check(signed)
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_request(signed, query_string=b"q=a+b"))


def test_wrong_secret(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(posted, secret=SECRET + "x")


def test_wrong_region() -> None:
    signed = sign("GET", f"{BASE}/logs", region="eu-west-1")
    with pytest.raises(SigV4Error, match="region 'eu-west-1' does not match"):
        check(signed)


def test_scope_region_edited_to_server_region() -> None:
    signed = sign("GET", f"{BASE}/logs", region="eu-west-1")
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_authorization(signed, "/eu-west-1/", f"/{REGION}/"))


def test_wrong_service() -> None:
    signed = sign("GET", f"{BASE}/logs", service="es")
    with pytest.raises(SigV4Error, match="service 'es' does not match"):
        check(signed)


def test_host_not_signed(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="host header must be listed in SignedHeaders"):
        check(with_authorization(posted, "SignedHeaders=host;", "SignedHeaders="))


def test_signed_host_missing_from_request(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="signed header 'host' is listed in SignedHeaders but missing"):
        check(with_headers(posted, host=""))


def test_unknown_signed_header(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="signed header 'x-unknown' is listed in SignedHeaders but missing"):
        check(with_authorization(posted, "x-amz-date;", "x-amz-date;x-unknown;"))


def test_x_amz_date_not_signed(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="x-amz-date header must be listed in SignedHeaders"):
        check(with_authorization(posted, "x-amz-date;", ""))


def test_replayed_request_older_than_window(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="expired"):
        check(posted, now=NOW + 301)


def test_request_from_the_future(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="in the future"):
        check(posted, now=NOW - 301)


def test_scope_date_differs_from_x_amz_date_day(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="does not match the day of the x-amz-date header"):
        check(with_authorization(posted, "/20240517/", "/20240516/"))


def test_x_amz_date_moved_to_another_day(posted: Signed) -> None:
    moved = with_headers(posted, x_amz_date="20240518T000000Z")
    with pytest.raises(SigV4Error, match="does not match the day"):
        check(moved, now=NOW + 12 * 3600)


def test_x_amz_date_shifted_within_window(posted: Signed) -> None:
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_headers(posted, x_amz_date="20240517T123100Z"))


@pytest.mark.parametrize("value", ["", "2024-05-17T12:30:45Z", "20240517T123045", "20241317T123045Z"])
def test_malformed_x_amz_date(posted: Signed, value: str) -> None:
    if value:
        with pytest.raises(SigV4Error, match="x-amz-date header"):
            check(with_headers(posted, x_amz_date=value))
    else:
        with pytest.raises(SigV4Error, match="missing x-amz-date header"):
            check(with_headers(posted, x_amz_date=""))


def test_duplicate_x_amz_date(posted: Signed) -> None:
    headers = [*posted.request.headers, (b"x-amz-date", b"20240517T123045Z")]
    with pytest.raises(SigV4Error, match="exactly once"):
        check(with_request(posted, headers=headers))


def test_body_hash_header_mismatch_after_tampering() -> None:
    body = b'{"msg":"hello"}'
    signed = sign("POST", f"{BASE}/logs", body, {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    with pytest.raises(SigV4Error, match="body hash mismatch"):
        check(with_request(signed, body=b'{"msg":"bye!!"}'))


@pytest.mark.parametrize("declared", [hashlib.sha256(b"other").hexdigest(), "UNSIGNED-PAYLOAD"])
def test_body_hash_header_wrong_even_though_signed(declared: str) -> None:
    # The signature is valid, but it vouches for a body hash that is not this body's.
    signed = sign("POST", f"{BASE}/logs", b"{}", {"X-Amz-Content-SHA256": declared})
    with pytest.raises(SigV4Error, match="body hash mismatch"):
        check(signed)


SIGNATURE = "a" * 64
SCOPE = f"{AKID}/20240517/{REGION}/{SERVICE}/aws4_request"


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("", "must start with"),
        ("Bearer abc", "must start with"),
        ("AWS4-HMAC-SHA256X Credential=x", "must start with"),
        ("AWS4-HMAC-SHA256", "has no Credential"),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host;x-amz-date", "missing the Signature"),
        (f"AWS4-HMAC-SHA256 SignedHeaders=host, Signature={SIGNATURE}", "missing the Credential"),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, Signature={SIGNATURE}", "missing the SignedHeaders"),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host x, Signature={SIGNATURE}", "Name=value"),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}; SignedHeaders=host; Signature={SIGNATURE}", "must end with"),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature", "expected Name=value"),
        (
            f"AWS4-HMAC-SHA256 Credential={SCOPE}, Credential={SCOPE}, SignedHeaders=host, Signature={SIGNATURE}",
            "more than once",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature={SIGNATURE}, Extra=1",
            "unexpected Authorization component 'Extra'",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={AKID}/20240517/{REGION}/aws4_request, SignedHeaders=host, "
            f"Signature={SIGNATURE}",
            "Credential must have the form",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential=/20240517/{REGION}/{SERVICE}/aws4_request, SignedHeaders=host, "
            f"Signature={SIGNATURE}",
            "empty access key id",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={AKID}/2024-05-17/{REGION}/{SERVICE}/aws4_request, "
            f"SignedHeaders=host, Signature={SIGNATURE}",
            "not in YYYYMMDD format",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={AKID}/20240517//{SERVICE}/aws4_request, SignedHeaders=host, "
            f"Signature={SIGNATURE}",
            "region '' is empty or malformed",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={AKID}/20240517/{REGION}/{SERVICE}/aws4_requests, "
            f"SignedHeaders=host, Signature={SIGNATURE}",
            "must end with 'aws4_request'",
        ),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=Host, Signature={SIGNATURE}", "lower-case"),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host;;x, Signature={SIGNATURE}", "lower-case"),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=, Signature={SIGNATURE}", "lower-case"),
        (
            f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host;host, Signature={SIGNATURE}",
            "more than once",
        ),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature=abc", "64 hexadecimal"),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature={'g' * 64}", "64 hexadecimal"),
    ],
)
def test_malformed_authorization(authorization: str, message: str) -> None:
    with pytest.raises(SigV4Error, match=message):
        parse_authorization(authorization)


@pytest.mark.parametrize("separator", [", ", ",", " ,  ", " "], ids=["comma-space", "comma", "padded", "space"])
def test_parse_authorization_fields(separator: str) -> None:
    credential = parse_authorization(
        f" AWS4-HMAC-SHA256  Credential={SCOPE}{separator}SignedHeaders=host;x-amz-date{separator}"
        f"Signature={SIGNATURE.upper()} "
    )
    assert credential == Credential(AKID, "20240517", REGION, SERVICE, ("host", "x-amz-date"), SIGNATURE)


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}", True),
        ("AWS4-HMAC-SHA256", True),
        ("Bearer AWS4-HMAC-SHA256", False),
        ("AWS4-HMAC-SHA256X foo", False),
        ("Basic dXNlcjpwYXNz", False),
        ("", False),
    ],
)
def test_is_sigv4(authorization: str, expected: bool) -> None:
    assert is_sigv4(authorization) is expected


# --- property --------------------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=10)
_segment_safe = st.sampled_from(["", "~", ":@!$&'()*+,;=", "-._~:@"])


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=300),
    segments=st.lists(st.tuples(_text.filter(lambda s: s not in ("", ".", "..")), _segment_safe), max_size=4),
    params=st.lists(st.tuples(_text, _text), max_size=5),
    plus=st.booleans(),
    data=st.data(),
)
def test_botocore_signed_requests_verify_and_any_body_byte_flip_fails(
    body: bytes,
    segments: list[tuple[str, str]],
    params: list[tuple[str, str]],
    plus: bool,
    data: st.DataObject,
) -> None:
    path = "/" + "/".join(quote(segment, safe=safe) for segment, safe in segments)
    query = urlencode(params, quote_via=quote_plus if plus else quote)
    signed = sign("POST", f"{BASE}{path}" + (f"?{query}" if query else ""), body)
    check(signed)

    index = data.draw(st.integers(0, len(body) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    flipped = bytearray(body)
    flipped[index] ^= mask
    with pytest.raises(SigV4Error, match="signature does not match"):
        check(with_request(signed, body=bytes(flipped)))
