"""The web UI's files, ready to serve: read from the package once, gzipped once, and published under
a folder named by a hash of all their contents, so a browser may cache them for good and a new release
is fetched at once. The modules import each other by relative paths, which keep working inside that folder."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGES = ("index.html", "login.html")  # the documents; every other file is an asset
ASSETS_MARK = b"%ASSETS%"  # where a page names the assets' folder


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
                self.pages[name] = _file(name, body.replace(ASSETS_MARK, self.prefix.encode()))
            else:
                self.files[name] = _file(name, body)

    def gzipped_size(self) -> int:
        return sum(len(f.gzipped) for f in (*self.files.values(), *self.pages.values()))


def _file(name: str, body: bytes) -> File:
    # mtime=0: the same bytes on every start, so an ETag-less cache never sees a spurious change
    return File(body, gzip.compress(body, 9, mtime=0), CONTENT_TYPES[Path(name).suffix])
