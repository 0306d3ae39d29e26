"""A small HTTP client for a running loglake server (used by the `loglake` commands with --url)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from loglake.bearer import bearer_header
from loglake.retry import Backoff, TryAgain, retry_after_seconds
from loglake.urls import endpoint_in

# Answers that say "not now" rather than "no": the server (or a proxy before it) is busy, restarting or
# away. A 500 is not among them: it may come from one record, which only halving a batch finds.
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
# 503s that asking again does not mend: a lake file damaged or removed outside loglake (the answer says what to do).
LASTING_CODES = frozenset({"lake_unreadable"})
# The server could not be reached, or went away before answering.
UNREACHABLE = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
# A server started on another port (`LOGLAKE_PORT=9000 make run`) is running, elsewhere: say how to name it.
NOT_THERE = "is `loglake serve` running there? (--url or LOGLAKE_URL names the server)"
READ_ATTEMPTS = 6  # reads retry "not now" answers, not an unreachable server: a person is waiting
READ_GIVE_UP_SECONDS = 60.0

OnRetry = Callable[[Exception, float], None]


class ClientError(Exception):
    """The server refused a request or could not be reached; the message says what to do."""

    def __init__(
        self, message: str, status: int | None = None, details: list | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or []
        self.code = code  # the server's error code, when it sent one


class LoglakeClient:
    def __init__(self, url: str, api_key: str | None, timeout: float = 30.0, backoff: Backoff | None = None) -> None:
        headers = {}
        self._key_problem = ""  # said by every request, as a server that cannot be reached is
        if api_key:
            try:
                headers["authorization"] = bearer_header(api_key)
            except ValueError as e:
                self._key_problem = f"{e} (--api-key / LOGLAKE_API_KEY)"
        self.url = url.rstrip("/")
        self.backoff = backoff or Backoff()
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> LoglakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def send(
        self, records: Sequence[bytes], *, give_up_after: float | None = None, on_retry: OnRetry | None = None
    ) -> list[str]:
        """Post one batch of JSON-encoded records (gzipped NDJSON); returns their log ids. While the server
        cannot be reached or answers "not now", the batch is sent again, for up to give_up_after seconds
        (None: for as long as it takes). A batch whose answer was lost on the way back (the server died
        mid-request) can so be stored twice; records with their own `id` are stored once whatever happens."""
        body = gzip.compress(b"\n".join(records), compresslevel=1)
        headers = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
        answer = self._request(
            "POST",
            "/logs",
            content=body,
            headers=headers,
            retry_unreachable=True,
            give_up_after=give_up_after,
            on_retry=on_retry,
        )
        return answer["logIds"]

    def recent(self, params: dict[str, Any], *, wait_for_server: OnRetry | None = None) -> dict[str, Any]:
        """GET /logs/recent. With `wait_for_server`, a server that cannot be reached is asked again for
        as long as it takes (a follow outlives a restart); the callback hears each retry."""
        return self._request(
            "GET",
            "/logs/recent",
            params={k: v for k, v in params.items() if v is not None},
            retry_unreachable=wait_for_server is not None,
            give_up_after=None if wait_for_server is not None else READ_GIVE_UP_SECONDS,
            on_retry=wait_for_server,
        )

    def search(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._request("GET", "/logs/search", params={k: v for k, v in params.items() if v is not None})

    def tail(self, params: dict[str, Any], *, wait_for_server: OnRetry | None = None) -> Iterator[tuple[str, dict]]:
        """GET /logs/tail, opened now: its server-sent events as they come, each as (event name, data), until the
        server ends the stream; ClientError when it cannot be opened, or is lost. With `wait_for_server`, a server
        that cannot be reached or answers "not now" is asked again for as long as it takes (a tail outlives a
        restart); the callback hears each retry. Without, the first answer counts (a 429 says the key holds its
        tails: waiting would not end that)."""
        waits = wait_for_server is not None
        response = self._send(
            "GET",
            "/logs/tail",
            stream=True,
            params={k: v for k, v in params.items() if v is not None},
            retry_unreachable=waits,
            give_up_after=None,
            on_retry=wait_for_server,
            attempts=None if waits else 1,
        )
        return self._events(response)

    def _events(self, response: httpx.Response) -> Iterator[tuple[str, dict]]:
        try:
            yield from server_sent_events(response.iter_lines())
        except UNREACHABLE as e:
            reason = str(e) or type(e).__name__
            raise ClientError(f"lost loglake at {self.url}: {reason}; {NOT_THERE}") from None
        finally:
            response.close()

    def query(self, sql: str, **options: Any) -> dict[str, Any]:
        body = {"sql": sql} | {k: v for k, v in options.items() if v is not None}
        return self._request("POST", "/query", json=body)

    def tables(self) -> list[dict[str, Any]]:
        return self._request("GET", "/tables")["tables"]

    def amplify_reports(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return self._request("GET", "/amplify/reports", params=params)["reports"]

    def alerts(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._request("GET", "/alerts", params={k: v for k, v in params.items() if v is not None})

    def alert(self, alert_id: str) -> dict[str, Any]:
        return self._request("GET", f"/alerts/{quote(alert_id, safe='')}")

    def change_alert(self, alert_id: str, action: str, note: str | None) -> dict[str, Any]:
        """POST /alerts/{id}/{action} (acknowledge or resolve), with the note if there is one."""
        body = {"json": {"note": note}} if note is not None else {}
        return self._request("POST", f"/alerts/{quote(alert_id, safe='')}/{action}", **body)

    def deliveries(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._request("GET", "/alerts/deliveries", params={k: v for k, v in params.items() if v is not None})

    def retry_delivery(self, delivery_id: str) -> dict[str, Any]:
        return self._request("POST", f"/alerts/deliveries/{quote(delivery_id, safe='')}/retry")

    def get(self, log_id: str) -> dict[str, Any]:
        return self._request("GET", f"/logs/{quote(log_id, safe='')}")

    # Asking is never retried here: each try calls the server's model again (and spends its tokens).
    def ask_status(self) -> dict[str, Any]:
        return self._request("GET", "/ask")

    def ask(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/ask", json=body, attempts=1)

    def explain_sql(self, sql: str) -> dict[str, Any]:
        return self._request("POST", "/ask/explain", json={"sql": sql}, attempts=1)

    def draft_rule(self, conversation_id: str, confirm: bool) -> dict[str, Any]:
        path = f"/ask/{quote(conversation_id, safe='')}/rule"
        return self._request("POST", path, json={"confirm": confirm}, attempts=1)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of a request (see _send)."""
        return self._send(method, path, **kwargs).json()

    def _send(
        self,
        method: str,
        path: str,
        *,
        stream: bool = False,
        retry_unreachable: bool = False,
        give_up_after: float | None = READ_GIVE_UP_SECONDS,
        on_retry: OnRetry | None = None,
        attempts: int | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The successful answer to a request, asked again while the server answers "not now" (and while it cannot
        be reached, with retry_unreachable); ClientError saying why not. `stream`: the body is left to read."""
        if self._key_problem:
            raise ClientError(self._key_problem)

        def attempt() -> httpx.Response:
            try:
                response = self._http.send(self._http.build_request(method, path, **kwargs), stream=stream)
                if not response.is_success:
                    response.read()  # the error's body (a streamed answer has not read it yet)
                    response.close()
            except UNREACHABLE as e:
                reason = str(e) or type(e).__name__
                error = ClientError(f"cannot reach loglake at {self.url}: {reason}; {NOT_THERE}")
                if retry_unreachable:
                    raise TryAgain(error) from None
                raise error from None
            except httpx.TransportError as e:  # a URL httpx cannot use, say
                raise ClientError(f"cannot use loglake at {self.url}: {e}") from None
            if response.is_success:
                return response
            error = _error(response, endpoint_in(self.url, response.status_code))
            if response.status_code in RETRY_STATUSES and error.code not in LASTING_CODES:
                raise TryAgain(error, retry_after_seconds(response.headers.get("retry-after"), time.time()))
            raise error

        if attempts is None:
            attempts = None if retry_unreachable else READ_ATTEMPTS
        return self.backoff.run(attempt, attempts=attempts, give_up_after=give_up_after, on_retry=on_retry)


def server_sent_events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) of each event in a text/event-stream's lines; comments are skipped."""
    name, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def _error(response: httpx.Response, endpoint: str = "") -> ClientError:
    """The server's refusal as a ClientError; `endpoint`: urls.endpoint_in the client's url."""
    try:
        error = response.json()["error"]
        message, details, code = error["message"], error.get("details", []), error.get("code")
    except (ValueError, KeyError, TypeError):
        message, details, code = response.text[:200] or response.reason_phrase, [], None
        if "html" in response.headers.get("content-type", ""):  # (a web server's error page, not loglake's answer)
            message = f"{response.reason_phrase}, an HTML page: is --url / LOGLAKE_URL a loglake server?"
    if response.is_redirect:  # (not followed: where it goes says what the url reached, a sign-in page, https, ...)
        message = f"{message}, redirected to {response.headers['location']}"
    # (A 403 says itself what is missing: the scope it needs and how to make a key with it, or the browser origin.)
    hint = " (check --api-key / LOGLAKE_API_KEY)" if response.status_code == 401 else ""
    if endpoint:  # (LOGLAKE_URL=http://host:8080/logs: POST /logs/logs)
        hint = f" (--url / LOGLAKE_URL is the server's address, like http://127.0.0.1:8080, without /{endpoint})"
    code = code if isinstance(code, str) else None  # (a proxy's JSON may say anything)
    return ClientError(f"HTTP {response.status_code}: {message}{hint}", response.status_code, details, code)
