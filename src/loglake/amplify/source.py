"""Fetching one time range of one app's access logs: GenerateAccessLogs, then the CSV at its logUrl.

The boto3 client is the standard one, built from the app's `profile` and `region` through the usual
AWS config and credentials files, so the usual endpoint overrides apply (`AWS_ENDPOINT_URL_AMPLIFY`,
`AWS_ENDPOINT_URL`): that is how tests point it at a local server. botocore's own retries are off:
the collector decides what to retry, what to split and what to give up on, and counts it.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loglake.amplify.config import AmplifyApp

if TYPE_CHECKING:
    import botocore.exceptions
    import httpx

# boto3, botocore and httpx are imported when a source is made or first calls AWS: they take ~20 MiB of
# memory, which a server that collects no Amplify logs (the collector is built only for configured
# apps) does without.

# Errors the service gives when a range holds too much for one export (seen in the console and the
# API's BadRequestException messages).
_TOO_LARGE_HINTS = ("reduce time range", "reduce the time range", "too many records", "time range is too large")
_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "LimitExceededException", "Throttling"}
DOWNLOAD_TIMEOUT_SECONDS = 300.0
GENERATE_TIMEOUT_SECONDS = 120.0  # longer, and the range is taken as too large to export in one go


class FetchError(Exception):
    """Fetching a range failed; the subclass says what the collector does about it."""


class RangeTooLarge(FetchError):
    """The service wants a smaller range (or timed out working on this one): split it."""


class Retryable(FetchError):
    """Throttling, a 5xx, a dropped connection: try again after a pause."""


class Fatal(FetchError):
    """Anything else (unknown app, no credentials, access denied): this window fails."""


class AmplifyLogSource:
    """Fetches access logs for the configured apps; one boto3 client per (profile, region)."""

    def __init__(
        self,
        session_factory: Any = None,
        http: httpx.Client | None = None,
        read_timeout_seconds: float = GENERATE_TIMEOUT_SECONDS,
    ) -> None:
        self._session_factory = session_factory  # None: boto3.Session
        self._read_timeout = read_timeout_seconds
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        if http is None:
            import httpx

            http = httpx.Client(timeout=DOWNLOAD_TIMEOUT_SECONDS, follow_redirects=True)
        self._http = http

    def close(self) -> None:
        self._http.close()

    def fetch(self, app: AmplifyApp, start: datetime, end: datetime) -> bytes:
        """The export for [start, end] (the API includes the end), as delivered."""
        return self.download(self.generate(app, start, end))

    def generate(self, app: AmplifyApp, start: datetime, end: datetime) -> str:
        import botocore.exceptions

        client = self._client(app)
        try:
            answer = client.generate_access_logs(
                appId=app.app_id, domainName=app.domain_name, startTime=start, endTime=end
            )
        except botocore.exceptions.ClientError as e:
            raise _classified(e) from None
        except (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError) as e:
            raise RangeTooLarge(f"GenerateAccessLogs timed out ({e})") from None
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError) as e:
            raise Retryable(f"cannot reach the Amplify endpoint: {e}") from None
        except botocore.exceptions.NoCredentialsError:
            raise Fatal(
                f"no AWS credentials for profile {app.profile!r}: add it to ~/.aws/credentials "
                "(or set AWS_SHARED_CREDENTIALS_FILE)"
            ) from None
        except botocore.exceptions.BotoCoreError as e:
            raise Fatal(f"GenerateAccessLogs failed: {e}") from None
        url = answer.get("logUrl")
        if not url:
            raise Retryable("GenerateAccessLogs answered without a logUrl")
        return url

    def download(self, url: str) -> bytes:
        import httpx

        try:
            response = self._http.get(url)
        except httpx.TimeoutException as e:
            raise Retryable(f"downloading the access log timed out: {e}") from None
        except httpx.HTTPError as e:
            raise Retryable(f"downloading the access log failed: {e}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise Retryable(f"downloading the access log: HTTP {response.status_code}")
        if response.status_code != 200:
            raise Fatal(f"downloading the access log: HTTP {response.status_code} {response.text[:200]}")
        return response.content

    def _client(self, app: AmplifyApp) -> Any:
        import botocore.exceptions
        from botocore.config import Config

        key = (app.profile, app.region)
        with self._lock:  # boto3 sessions are not thread-safe to create clients from
            if key not in self._clients:
                try:
                    session = (self._session_factory or _boto3_session())(profile_name=app.profile)
                except botocore.exceptions.ProfileNotFound:
                    raise Fatal(
                        f"AWS profile {app.profile!r} is not in the AWS config or credentials files "
                        "(~/.aws/config, ~/.aws/credentials, or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)"
                    ) from None
                config = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=self._read_timeout)
                self._clients[key] = session.client("amplify", region_name=app.region, config=config)
            return self._clients[key]


def missing_profiles(apps: list[AmplifyApp], session_factory: Any = None) -> list[str]:
    """The apps' AWS profiles that the AWS config and credentials files do not define."""
    import botocore.exceptions

    missing = []
    for profile in sorted({app.profile for app in apps}):
        try:
            (session_factory or _boto3_session())(profile_name=profile)
        except botocore.exceptions.ProfileNotFound:
            missing.append(profile)
    return missing


def _boto3_session() -> Any:
    import boto3

    return boto3.Session


def _classified(error: botocore.exceptions.ClientError) -> FetchError:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "") or str(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    text = f"{code}: {message}"
    if code == "BadRequestException" and any(hint in message.lower() for hint in _TOO_LARGE_HINTS):
        return RangeTooLarge(text)
    if code in _THROTTLED or status == 429 or status >= 500:
        return Retryable(text)
    return Fatal(text)
