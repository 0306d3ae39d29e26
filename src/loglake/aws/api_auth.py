"""The API function's app: API Gateway lets in only IAM-signed requests (aws/infra), throttled, so each request
that reaches it is an admin's, from whatever name and origin the deployment is called by."""

from __future__ import annotations

from loglake.api.app import LoglakeApp
from loglake.api.auth import Authenticator
from loglake.runtime import Runtime


class IamAuthorizedApp(LoglakeApp):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        # (no keyring, as with auth off; but not a loopback server's callers, whose names and origins are checked)
        self.auth = Authenticator(None, self.settings.region, runtime.clock, self.sessions, loopback_only=False)
