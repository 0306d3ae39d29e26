"""Whether text is an http(s) URL a client can send to."""

from urllib.parse import urlsplit


def is_http_url(text: str) -> bool:
    """http:// or https:// with a host, and no white space (which urlsplit would let through)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in text)
