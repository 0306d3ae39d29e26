"""The Authorization header a client sends with an API key: the `loglake` commands' and the logging handler's."""

from __future__ import annotations

import unicodedata

# What a key is made of (keys.py: `llk_` and URL-safe base64): printable ASCII, no space.
_KEY_CHARACTERS = frozenset(map(chr, range(0x21, 0x7F)))


def bearer_header(api_key: str) -> str:
    """`Bearer <key>`, the key without the white space around it (the newline of a key file or a secret mount,
    which no header may hold, as the server ignores it). ValueError for a key holding a character no key holds (a
    control character, or the `…` of a hint `loglake keys list` shortened), naming the character, never the key:
    httpx's own error quoted the whole header, or was a traceback."""
    key = api_key.strip()
    if key.lower().startswith("bearer "):  # (copied from a curl line's header)
        raise ValueError("the API key starts with `Bearer `: give the key alone (llk_...), without it")
    for position, character in enumerate(key, 1):
        if character not in _KEY_CHARACTERS:
            name = unicodedata.name(character, f"U+{ord(character):04X}")
            raise ValueError(
                f"the API key holds {name} at character {position}, which no key holds: give the key as "
                "`loglake keys create` printed it"
            )
    return f"Bearer {key}"
