"""Whether text is an http(s) URL a client can send to, whether a refusal says its path was not the server's
address, and a URL as it may be shown."""

from urllib.parse import urlsplit, urlunsplit


def is_http_url(text: str) -> bool:
    """http:// or https:// with a host, a port that is a number up to 65535 (urlsplit checks it only when asked;
    httpx refuses `host:abc` at each send), and no white space (which urlsplit would let through)."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # read for its check: ValueError for a port that is not one
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in text)


def endpoint_in(server_url: str, status: int) -> str:
    """The path a client's server url holds after the address (`logs` of http://host:8080/logs) when the server
    answered 404 or 405, or redirected (a web UI page's url: /ui/logs/recent goes to the sign-in page, which a client
    does not follow): the client adds its endpoint's path to the url, so the url should be the address alone; ""
    otherwise."""
    return urlsplit(server_url).path.strip("/") if status in (404, 405) or 300 <= status < 400 else ""


def without_password(url: str) -> str:
    """The URL as a message may show it: a password in it (`http://user:password@host`, which HTTP clients send as
    Basic credentials) as `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
