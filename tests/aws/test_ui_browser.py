"""The web UI on AWS in a real browser (Debian's Chromium): the UI function's handler behind a small
stand-in for API Gateway's proxy integration (an HTTP server turning requests into proxy events and
proxy responses back), signing in through the Cognito stand-in's hosted UI on another site.

What only a browser shows: the sign-in cookie (SameSite=Lax) comes back with Cognito's cross-site
redirect, the session cookie (SameSite=Strict) is sent with the page's own calls after it, the pages
load under their Content-Security-Policy, and sign-out goes through Cognito's /logout."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from loglake.aws import handlers
from tests.aws.cognito_stand_in import Person, StandIn, running_stand_in
from tests.aws.test_api_handler import CONTEXT
from tests.aws.test_ui_sign_in import ui_function  # noqa: F401 (fixture)
from tests.conftest import free_port
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

PORT = free_port()
UI_URL = f"http://localhost:{PORT}"  # another site than the stand-in's 127.0.0.1: Cognito's redirect is cross-site


class ProxyIntegration:
    """API Gateway's Lambda proxy integration, as far as a browser sees it: each request one event to
    the handler, one at a time (a Lambda container takes one invocation at a time)."""

    def __init__(self) -> None:
        self.container = ThreadPoolExecutor(max_workers=1)

    async def __call__(self, scope: dict, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        multi: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            multi.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        query = parse_qs(scope["query_string"].decode(), keep_blank_values=True)
        event = {
            "httpMethod": scope["method"],
            "path": scope["path"],
            "headers": {name: values[-1] for name, values in multi.items()},
            "multiValueHeaders": multi,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "requestContext": {"requestId": str(uuid.uuid4()), "identity": {"sourceIp": "127.0.0.1"}},
            "body": base64.b64encode(body).decode() if body else None,
            "isBase64Encoded": bool(body),
        }
        answer = await asyncio.get_running_loop().run_in_executor(self.container, handlers.api, event, CONTEXT)
        data = base64.b64decode(answer["body"]) if answer["isBase64Encoded"] else answer["body"].encode()
        headers = [(k.encode(), v.encode()) for k, values in answer["multiValueHeaders"].items() for v in values]
        await send({"type": "http.response.start", "status": answer["statusCode"], "headers": headers})
        await send({"type": "http.response.body", "body": data})


SENT_TO_SIGN_IN = re.compile(r".*/login\?next=%2Fui%2F$")  # and back to /ui/ after signing in


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    with running_stand_in(ui_url=UI_URL, sign_in_form=True) as running:
        yield running


@pytest.fixture
def gateway(ui_function: str) -> Iterator[str]:  # noqa: F811
    integration = ProxyIntegration()
    server = uvicorn.Server(
        uvicorn.Config(integration, host="127.0.0.1", port=PORT, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield UI_URL
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        integration.container.shutdown(wait=True)


def test_sign_in_with_cognito_use_the_ui_and_sign_out(gateway: str, stand_in: StandIn) -> None:
    stand_in.person = Person("ada@example.com", ["loglake-admin"])
    refused: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"{gateway}/ui/")
            page.wait_for_url(SENT_TO_SIGN_IN)  # not signed in: the server sends the browser to sign in
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOTS / "aws-login.png")
            page.get_by_role("link", name="Sign in with Cognito").click()
            page.wait_for_url(f"{stand_in.url}/oauth2/authorize?**")
            page.get_by_role("button", name="Sign in").click()  # at "Cognito", another site
            page.wait_for_url(f"{gateway}/ui/**")
            page.get_by_text("ada@example.com (admin)").wait_for()  # GET /session took the Strict cookie
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert cookies["loglake_session"]["httpOnly"] and cookies["loglake_session"]["sameSite"] == "Strict"
            assert "loglake_sign_in" not in cookies  # spent

            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(f"{gateway}/login")
            assert [logout["logout_uri"] for logout in stand_in.logouts] == [f"{gateway}/login"]
            assert "loglake_session" not in {c["name"] for c in page.context.cookies()}
            page.goto(f"{gateway}/ui/")
            page.wait_for_url(SENT_TO_SIGN_IN)
        finally:
            browser.close()
    assert refused == []
