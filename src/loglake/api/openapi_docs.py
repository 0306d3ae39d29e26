"""/docs: a self-contained page rendered from the OpenAPI description (no CDN: loglake's docs must work on a
machine with no internet access), and its style sheet."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

from loglake.api.routes import Result
from loglake.api.ui_routes import FAVICON_PATH

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp
    from loglake.api.http import Request


def _text(value: str) -> str:
    """Escaped text with `code` spans, the only markup the descriptions use."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(value))


# A file of its own, not a <style> element: the Content-Security-Policy (security_headers.py) lets pages
# use only styles loaded from the server.
DOCS_CSS_PATH = "/docs.css"
_DOCS_CSS = (
    b"body{font:15px system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    b"code,pre{background:#f4f4f4;padding:2px 4px}h2{margin-top:1.6em;font-family:monospace}"
    b"table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}"
)


async def docs_css(app: LoglakeApp, request: Request) -> Result:
    return Result(200, _DOCS_CSS, ((b"content-type", b"text/css; charset=utf-8"),))


def _auth(security: list[dict[str, list]]) -> str:
    """An operation's security requirements as a person reads them: the schemes' names, its clients' first."""
    names = [name for requirement in security for name in requirement]
    if not names:
        return "none"
    return ("none, or " if {} in security else "") + ", ".join(names)


def render_docs(document: dict[str, Any]) -> bytes:
    parts = [
        f"<!doctype html><meta charset=utf-8><title>loglake API</title><link rel=stylesheet href={DOCS_CSS_PATH}>"
        f"<link rel=icon href={FAVICON_PATH} type=image/svg+xml>",
        f"<h1>loglake API {html.escape(document['info']['version'])}</h1>",
        f"<p>{_text(document['info']['description'])}</p>",
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a>. Errors are "
        '<code>{"error": {"code", "message", "details"}}</code>.</p>',
        "<p>Authentication, any of:</p><ul>",
        *(
            f"<li><b>{name}</b>: {_text(scheme.get('description', ''))}</li>"
            for name, scheme in document["components"]["securitySchemes"].items()
        ),
        "</ul>",
    ]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            parts.append(f"<h2>{method.upper()} {html.escape(path)}</h2><p>{_text(op['summary'])}</p>")
            parts.append(f"<p>Auth: {_auth(op.get('security', document['security']))}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table><tr><th>parameter</th><th>in</th><th>meaning</th></tr>")
                parts.extend(
                    f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                    f"<td>{_text(p.get('description', ''))}</td></tr>"
                    for p in params
                )
                parts.append("</table>")
            statuses = ", ".join(
                f"<b>{code}</b> {html.escape(r.get('description', ''))}" for code, r in op["responses"].items()
            )
            parts.append(f"<p>Responses: {statuses}</p>")
    return "".join(parts).encode()
