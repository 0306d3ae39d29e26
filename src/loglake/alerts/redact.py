"""Redaction of what an alert carries out of the machine, per destination: `redact: [email, ip, token]`
and custom patterns `{pattern: REGEX, replace: TEXT}`.

It applies to the data the alert took from logs (its title, group values, evidence records and dedup
key), never to the copy kept in alerts.db. A dedup key that redaction would change is sent as a hash
of the original instead, so two keys that differ only in a redacted part stay two keys at the
receiver (PagerDuty would otherwise fold `login-[email]` of two users into one incident).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

Replace = Callable[[str], str]


def _regex_sub(pattern: str, replacement: str, flags: int = 0) -> Replace:
    compiled = re.compile(pattern, flags)
    return lambda text: compiled.sub(replacement, text)


_IPV4 = r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"
_IPV6_CANDIDATE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")


def _ipv6(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        try:
            ipaddress.IPv6Address(match.group(0).split("%")[0])
        except ValueError:  # a time such as 10:00:00, a MAC-like label
            return match.group(0)
        return "[ip]"

    return _IPV6_CANDIDATE.sub(one, text)


_ipv4 = _regex_sub(_IPV4, "[ip]")
_EMAIL = r"[A-Za-z0-9._%+-][A-Za-z0-9._%+'-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_TOKENS = (
    # name=value or "name": "value" for the usual secret names: keep the name, hide the value
    _regex_sub(
        r"(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+",
        r"\1[token]",
    ),
    _regex_sub(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", r"\1 [token]"),
    _regex_sub(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", "[token]"),  # JWT
    _regex_sub(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", "[token]"),  # AWS access key id
    _regex_sub(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", "[token]"),  # Slack
    # 32+ letters and digits, with both: API keys, hex digests of secrets, GitHub tokens (ghp_...)
    _regex_sub(r"\b(?=[A-Za-z0-9_]*\d)(?=[A-Za-z0-9_]*[A-Za-z])[A-Za-z0-9_]{32,}\b", "[token]"),
)

PATTERNS: dict[str, tuple[Replace, ...]] = {
    "email": (_regex_sub(_EMAIL, "[email]"),),
    "ip": (_ipv4, _ipv6),
    "token": _TOKENS,
}

PatternName = Annotated[
    str,
    msgspec.Meta(pattern=r"\A(?:" + "|".join(PATTERNS) + r")\Z", description=f"one of {', '.join(PATTERNS)}"),
]


class CustomPattern(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A regular expression (Python syntax) whose matches are replaced."""

    pattern: Annotated[str, msgspec.Meta(min_length=1)]
    replace: str = "[redacted]"

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.pattern)
        except re.error as e:
            raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {e}") from None
        if compiled.match(""):
            raise ValueError(f"pattern {self.pattern!r} matches empty text; it would insert text everywhere")


RedactItem = PatternName | CustomPattern


class Redactor:
    """The replacements of one destination's `redact` list, applied to an alert's data."""

    def __init__(self, items: list[RedactItem]) -> None:
        self._steps: list[Replace] = []
        for item in items:
            if isinstance(item, str):
                self._steps.extend(PATTERNS[item])
            else:
                self._steps.append(_regex_sub(item.pattern, item.replace.replace("\\", "\\\\")))

    def __bool__(self) -> bool:
        return bool(self._steps)

    def text(self, value: str) -> str:
        for step in self._steps:
            value = step(value)
        return value

    def value(self, value: Any) -> Any:
        """Strings inside any JSON value redacted (object keys too: attributes may be keyed by address)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value

    def alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        """An alert (as delivery sees it) with its data from logs redacted."""
        if not self:
            return alert
        redacted = dict(alert)
        for name in ("title", "group_values", "evidence", "status_note"):
            redacted[name] = self.value(alert.get(name))
        key = alert["dedup_key"]
        if self.text(key) != key:
            redacted["dedup_key"] = "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:32]
        return redacted
