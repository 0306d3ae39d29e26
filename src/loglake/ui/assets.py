"""The web UI's files, ready to serve: read from the package once, gzipped once, and published under
a folder named by a hash of all their contents, so a browser may cache them for good and a new release
is fetched at once. The modules import each other by relative paths, which keep working inside that folder."""

from __future__ import annotations

import gzip
import hashlib
import html
import json
from dataclasses import dataclass
from pathlib import Path

from loglake.keys import KEY_NAME_PATTERN, KEY_NAME_RULE, MAX_KEY_NAME_CHARS
from loglake.ui.sign_in import SIGN_IN_REASONS, UNKNOWN_REASON

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGES = ("index.html", "login.html")  # the documents; every other file is an asset
ASSETS_MARK = b"%ASSETS%"  # where a page names the assets' folder
REASONS_MARK = b"%SIGN_IN_REASONS%"  # where the sign-in page takes its messages (an HTML attribute's value)
KEY_NAME_MARK = b"%KEY_NAME%"  # where the UI's page takes what a key's name may be (an HTML attribute's value)


@dataclass(frozen=True, slots=True)
class File:
    body: bytes
    gzipped: bytes
    content_type: str


class Assets:
    def __init__(self, folder: Path = STATIC) -> None:
        sources = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in CONTENT_TYPES}
        digest = hashlib.sha256()
        for name, body in sources.items():
            digest.update(name.encode() + b"\0" + body + b"\0")
        self.version = digest.hexdigest()[:16]
        self.prefix = f"/ui/assets/{self.version}"
        self.files: dict[str, File] = {}
        self.pages: dict[str, File] = {}
        for name, body in sources.items():
            if name in PAGES:
                page = body.replace(ASSETS_MARK, self.prefix.encode()).replace(REASONS_MARK, _reasons_attribute())
                page = page.replace(KEY_NAME_MARK, _attribute(KEY_NAME_FIELD))
                self.pages[name] = _file(name, page)
            else:
                self.files[name] = _file(name, body)

    def gzipped_size(self) -> int:
        return sum(len(f.gzipped) for f in (*self.files.values(), *self.pages.values()))


# The key name field of the Status page's key form, as the key store checks a name: the browser then says what
# a refused name may hold (with a pattern alone Chromium says only "Please match the requested format.").
KEY_NAME_FIELD = {
    "pattern": KEY_NAME_PATTERN,
    "maxlength": MAX_KEY_NAME_CHARS,
    "title": f"A key's name is {KEY_NAME_RULE}.",
}


def _reasons_attribute() -> bytes:
    """The sign-in messages by reason code, as JSON escaped for a double-quoted HTML attribute."""
    return _attribute(SIGN_IN_REASONS | {"": UNKNOWN_REASON})


def _attribute(value: object) -> bytes:
    """A value as JSON escaped for a double-quoted HTML attribute."""
    return html.escape(json.dumps(value, ensure_ascii=False)).encode()


def _file(name: str, body: bytes) -> File:
    # mtime=0: the same bytes on every start, so an ETag-less cache never sees a spurious change
    return File(body, gzip.compress(body, 9, mtime=0), CONTENT_TYPES[Path(name).suffix])
