"""Text cut to a length with an ellipsis: one rule for every limit loglake puts on what a person reads."""

from __future__ import annotations

ELLIPSIS = "…"


def shortened(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its first `limit - 1` and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
