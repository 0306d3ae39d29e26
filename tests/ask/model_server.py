"""A local language-model server for tests: it speaks OpenAI's chat completions (POST .../chat/completions),
Anthropic's Messages API (POST /v1/messages) and Bedrock's Converse API (POST /model/{id}/converse, as
boto3's bedrock-runtime client sends it), and answers from a script. The model is not ours; the client
code that talks to it is, so tests drive the real clients against this server.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_CONVERSE = re.compile(r"/model/([^/]+)/converse")


@dataclass
class Failure:
    status: int
    body: str


@dataclass
class Spent:
    """A scripted reply whose answer reports `tokens` prompt tokens used (a day's budget spent at once)."""

    reply: str
    tokens: int


STALL = "stall"  # a scripted reply: answer nothing until the test ends (the client times out)
DRIP = "drip"  # a scripted reply: a byte every DRIP_S for DRIP_FOR_S, never the whole answer (no wait is long)
DRIP_S = 0.05
DRIP_FOR_S = 5.0
GATHER_S = 2.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def texts(self) -> list[str]:
        """Every message's text, in order (system prompt excluded)."""
        found = []
        for m in self.body.get("messages", []):
            content = m.get("content")
            if isinstance(content, list):
                found.append("".join(part.get("text", "") for part in content))
            else:
                found.append(content)
        return [t for t, m in zip(found, self.body.get("messages", []), strict=True) if m.get("role") != "system"]

    @property
    def system(self) -> str:
        system = self.body.get("system")
        if isinstance(system, list):
            return "".join(part.get("text", "") for part in system)
        if isinstance(system, str):
            return system
        return next((m["content"] for m in self.body.get("messages", []) if m.get("role") == "system"), "")


@dataclass
class ModelServer:
    url: str = ""
    replies: list[str | Failure | Spent] = field(default_factory=list)  # in order; then `answers`
    answers: dict[str, str] = field(default_factory=dict)  # the last user message -> the reply
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    # Each call waits until this many have come (or GATHER_S passed): calls overlap, as at a busy model.
    gather: int = 0
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def say(self, *replies: str | Failure | Spent) -> None:
        self.replies.extend(replies)

    def _gathered(self) -> None:
        with self._arrived:
            self._arrived.notify_all()
            self._arrived.wait_for(lambda: len(self.seen) >= self.gather, timeout=GATHER_S)

    def _reply(self, question: str) -> str | Failure | Spent:
        if self.replies:
            return self.replies.pop(0)
        return self.answers.get(question, "I cannot answer that from these tables.")


def _handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with server._arrived:
                server.seen.append(seen)
            server._gathered()
            reply = server._reply(seen.texts[-1] if seen.texts else "")
            if reply == STALL:
                server.release.wait(30)
                return
            if reply == DRIP:
                self.send_response(200)
                self.send_header("content-length", "1000000")
                self.end_headers()
                with contextlib.suppress(OSError):  # the client hung up
                    for _ in range(int(DRIP_FOR_S / DRIP_S)):
                        if server.release.wait(DRIP_S):
                            break
                        self.wfile.write(b" ")
                        self.wfile.flush()
                return
            if isinstance(reply, Failure):
                self._send(reply.status, reply.body.encode())
                return
            usage_in = len(json.dumps(body)) // 4
            if isinstance(reply, Spent):
                reply, usage_in = reply.reply, reply.tokens
            usage_out = len(reply) // 4
            if self.path.endswith("/chat/completions"):
                answer = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out},
                }
            elif self.path == "/v1/messages":
                answer = {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model"),
                    "content": [{"type": "text", "text": reply}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
                }
            elif _CONVERSE.fullmatch(self.path):
                answer = {
                    "output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
                    "stopReason": "end_turn",
                    "usage": {"inputTokens": usage_in, "outputTokens": usage_out, "totalTokens": usage_in + usage_out},
                    "metrics": {"latencyMs": 1},
                }
            else:
                self._send(404, b'{"message": "no such path"}')
                return
            self._send(200, json.dumps(answer).encode())

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with running_model_server() as server:
        yield server


@contextmanager
def running_model_server() -> Iterator[ModelServer]:
    """The server, on a free loopback port until the block ends (the web UI's tests share one per module)."""
    server = ModelServer()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    http.daemon_threads = True
    server.url = f"http://127.0.0.1:{http.server_address[1]}"
    thread = threading.Thread(target=http.serve_forever, name="model-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        http.shutdown()
        http.server_close()
        thread.join()


def sql_reply(sql: str, explanation: str = "Counts the records.") -> str:
    return f"```sql\n{sql}\n```\n{explanation}"
