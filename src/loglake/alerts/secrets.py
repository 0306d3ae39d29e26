"""Secrets in alerting.yml, by reference only: `{env: NAME}`, `{file: PATH}`, `{secretsmanager: ARN-or-name}`.

A reference is resolved when a delivery needs it, every time (a rotated secret is picked up without a
reload; Secrets Manager answers are kept for a few minutes), so a file naming a missing variable still
loads and only the deliveries that need it wait. Values never appear in a repr, an error or an API
answer: errors name the reference, and `scrub` takes resolved values out of any text that leaves a
destination (an HTTP error body or an exception may echo a URL that is itself a secret).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote_plus, urlsplit

import msgspec

SECRETS_MANAGER_TTL_SECONDS = 300.0
MAX_SECRET_FILE_BYTES = 64 * 1024
HIDDEN = "[secret]"
MIN_SCRUBBED_PART = 8  # shorter URL paths ("/", "/hook") say nothing secret, and would blank out common words
REFERENCE_ONLY = "a secret is given by reference: {env: NAME}, {file: PATH} or {secretsmanager: ARN-or-name}"

EnvName = Annotated[
    str, msgspec.Meta(pattern=r"\A[A-Za-z_][A-Za-z0-9_]*\Z", description="an environment variable's name")
]


class SecretError(Exception):
    """A reference that does not resolve now; the message names the reference, never a value."""


class SecretRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Where a secret is: exactly one of an environment variable, a file, or an AWS Secrets Manager secret."""

    env: EnvName | None = None
    file: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    secretsmanager: Annotated[str, msgspec.Meta(min_length=1)] | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("env", "file", "secretsmanager") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(REFERENCE_ONLY)

    def __str__(self) -> str:
        if self.env is not None:
            return f"{{env: {self.env}}}"
        if self.file is not None:
            return f"{{file: {self.file}}}"
        return f"{{secretsmanager: {self.secretsmanager}}}"


def reference_of(text: str) -> SecretRef:
    """A reference written as one setting's text (`env:NAME`, `file:PATH`, `secretsmanager:ID`: how
    flags and environment variables name a secret); ValueError for anything else."""
    kind, _, where = text.partition(":")
    if kind not in ("env", "file", "secretsmanager") or not where:
        raise ValueError("a secret is given by reference: env:NAME, file:PATH or secretsmanager:ID")
    try:
        return msgspec.convert({kind: where}, SecretRef)
    except msgspec.ValidationError as e:
        raise ValueError(f"{kind}:{where}: {e}") from None


def unset_variable(ref: SecretRef) -> str:
    # (a running process never sees a variable exported since it started: "export it" alone sent people to export it
    # in their own shell, or with systemctl set-environment, and watch every attempt fail for 37 min)
    return f"secret {ref} is not set: set {ref.env} in the server's environment and restart the server"


# A setting that may be written in the file (a user name, a public URL) or by reference (a webhook URL
# that is itself the credential, as Slack's and Teams' are).
TextOrSecret = str | SecretRef


class Secrets:
    """Resolves references. `secretsmanager_client` makes a boto3 client (injected in tests); boto3 is
    imported only when a Secrets Manager reference is first resolved."""

    def __init__(
        self,
        secretsmanager_client: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = secretsmanager_client
        self._client: Any = None
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def value(self, ref: TextOrSecret) -> str:
        if isinstance(ref, str):
            return ref
        if ref.env is not None:
            found = os.environ.get(ref.env)
            if not found:
                raise SecretError(unset_variable(ref))
            return found
        if ref.file is not None:
            return _read_secret_file(ref)
        assert ref.secretsmanager is not None
        return self._secretsmanager(ref.secretsmanager, ref)

    def _secretsmanager(self, secret_id: str, ref: SecretRef) -> str:
        with self._lock:
            cached = self._cache.get(secret_id)
            if cached is not None and self._clock() < cached[0]:
                return cached[1]
            if self._client is None:
                self._client = (self._client_factory or _boto3_secretsmanager)()
            client = self._client
        import botocore.exceptions

        try:
            answer = client.get_secret_value(SecretId=secret_id)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code") or type(e).__name__
            raise SecretError(f"secret {ref} could not be read from AWS Secrets Manager ({code})") from None
        text = answer.get("SecretString")
        if not text:
            raise SecretError(f"secret {ref} has no text value (SecretString)")
        with self._lock:
            self._cache[secret_id] = (self._clock() + SECRETS_MANAGER_TTL_SECONDS, text)
        return text


def _read_secret_file(ref: SecretRef) -> str:
    assert ref.file is not None
    try:
        with open(Path(ref.file).expanduser(), "rb") as f:
            data = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as e:
        raise SecretError(f"secret {ref} cannot be read: {e.strerror}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretError(f"secret {ref} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    text = data.decode("utf-8", "replace").strip()  # files written by `echo` end with a newline
    if not text:
        raise SecretError(f"secret {ref} is empty")
    return text


def _boto3_secretsmanager() -> Any:
    import boto3

    return boto3.client("secretsmanager")


def scrub(text: str, values: Iterable[str]) -> str:
    """`text` with every resolved secret value in it replaced by HIDDEN; of a URL, its path and query
    too (a Slack or Teams webhook's credential is its path, which receivers echo in their errors), and each
    value of its query, as written and decoded (a `token=`, `code=` or `sig=` is the credential, echoed alone)."""
    forms = set()
    for value in values:
        forms.add(value)
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            query = [v for pair in parts.query.split("&") for v in (pair.partition("=")[2],) if v]
            query += [unquote_plus(v) for v in query]
            forms.update(
                p for p in (parts.path, parts.query, parts.password or "", *query) if len(p) >= MIN_SCRUBBED_PART
            )
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, HIDDEN)
    return text
