"""A small HTTP client for a running loglake server (used by the `loglake` commands with --url)."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

_encode = msgspec.json.Encoder().encode
RETRYABLE = (429, 503)


class ClientError(Exception):
    """The server refused a request or could not be reached; the message says what to do."""

    def __init__(self, message: str, status: int | None = None, details: list | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or []


class LoglakeClient:
    def __init__(self, url: str, api_key: str | None, timeout: float = 30.0, retries: int = 5) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> LoglakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def send(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Post one batch as gzipped NDJSON; returns the log ids. Retries 429/503, which store nothing."""
        body = gzip.compress(b"\n".join(_encode(r) for r in records), compresslevel=1)
        headers = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
        return self._request("POST", "/logs", content=body, headers=headers)["logIds"]

    def recent(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._request("GET", "/logs/recent", params={k: v for k, v in params.items() if v is not None})

    def search(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._request("GET", "/logs/search", params={k: v for k, v in params.items() if v is not None})

    def query(self, sql: str, **options: Any) -> dict[str, Any]:
        body = {"sql": sql} | {k: v for k, v in options.items() if v is not None}
        return self._request("POST", "/query", json=body)

    def tables(self) -> list[dict[str, Any]]:
        return self._request("GET", "/tables")["tables"]

    def amplify_reports(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return self._request("GET", "/amplify/reports", params=params)["reports"]

    def get(self, log_id: str) -> dict[str, Any]:
        return self._request("GET", f"/logs/{quote(log_id, safe='')}")

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as e:
                raise ClientError(f"cannot reach loglake at {self.url}: {e}; is `loglake serve` running?") from None
            if response.status_code in RETRYABLE and attempt < self.retries:
                time.sleep(_retry_after(response, attempt))
                continue
            if response.is_success:
                return response.json()
            raise _error(response)
        raise AssertionError("unreachable")


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        return min(30.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return min(30.0, 0.5 * 2**attempt)


def _error(response: httpx.Response) -> ClientError:
    try:
        error = response.json()["error"]
        message, details = error["message"], error.get("details", [])
    except (ValueError, KeyError, TypeError):
        message, details = response.text[:200] or response.reason_phrase, []
    hint = {401: " (check --api-key / LOGLAKE_API_KEY)", 403: " (the key needs another scope)"}.get(
        response.status_code, ""
    )
    return ClientError(f"HTTP {response.status_code}: {message}{hint}", response.status_code, details)
