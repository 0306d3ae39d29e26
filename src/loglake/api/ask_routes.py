"""The ask routes: GET /ask, POST /ask, POST /ask/explain and POST /ask/{conversation}/rule over loglake.ask.

A question waits on a model for seconds: on threads of its own, so it never holds the API's read or
query threads, and stopped as the query threads' work is (app.run_watched: the model's call is cut when
its client goes away or the server is stopping). Each key has its own rate of questions
(llm_rate_per_minute); running an answer's SQL goes through the query threads and the engine exactly as
POST /query does, with its scope.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec

from loglake.api.auth import require_scope
from loglake.api.http import ApiError, Request, decode_content, json_struct
from loglake.api.metrics import Counter
from loglake.api.openapi_common import error_response, json_request
from loglake.api.ratelimit import RateLimiter
from loglake.api.routes import Result, json_body, json_body_limit, query_error, refuse_parameters
from loglake.ask.errors import (
    MAX_QUESTION_CHARS,
    AnswerRefused,
    AskError,
    BudgetExhausted,
    NoProvider,
    ProviderError,
)
from loglake.ask.providers import NOT_CONFIGURED_ON_SERVER
from loglake.ask.store import ASK_DB, AskStore, AskStoreBusy, NoSuchConversation
from loglake.lake.query_answers import QueryBusy, result_to_dict
from loglake.lake.sql_guard import QueryError
from loglake.lake.stop import Stop

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

T = TypeVar("T")
ASK_THREADS = 2
RULE_WRITE_SCOPE = "admin"  # writing into the rules folder changes what the server detects


class AskBody(msgspec.Struct, forbid_unknown_fields=True):
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUESTION_CHARS)]
    conversation_id: str | None = None
    run: bool = False
    time_zone: str = "UTC"


class ExplainBody(msgspec.Struct, forbid_unknown_fields=True):
    sql: Annotated[str, msgspec.Meta(min_length=1)]


class RuleBody(msgspec.Struct, forbid_unknown_fields=True):
    confirm: bool = False


class Asking:
    """What the ask routes keep: the Asker (made on first use, from the settings), the per-key rate
    limits and the threads questions wait on."""

    def __init__(self, app: LoglakeApp) -> None:
        self.app = app
        per_minute = app.settings.llm_rate_per_minute
        self.limiter = RateLimiter(per_minute / 60, max(1, int(per_minute)))
        self.outcomes = Counter("loglake_ask_questions_total", "Questions asked, by outcome.", ("outcome",))
        self._threads = ThreadPoolExecutor(max_workers=ASK_THREADS, thread_name_prefix="loglake-ask")
        self._asker: Any = None  # the Asker, made on first use (it loads the models' clients and sqlglot)
        self._making = threading.RLock()  # the Asker and the store, each made once
        self._store: AskStore | None = None

    @property
    def store(self) -> AskStore:
        """The data dir's ask.db (usage is counted there by the CLI too), opened on first use."""
        with self._making:
            if self._store is None:
                settings = self.app.settings
                hours = settings.llm_conversation_hours
                clock = self.app.runtime.clock
                self._store = AskStore(settings.data_dir, clock, hours * 3_600_000)
            return self._store

    def asker(self) -> Any:
        """The Asker, made on the first question (on an ask thread: it imports the models' clients)."""
        from loglake.ask.providers import provider_from_settings
        from loglake.ask.service import Asker, LakeSource

        if self.app.lake is None:
            raise ApiError(501, "not_available", "asking needs the lake, which this server's store does not have")
        with self._making:
            if self._asker is None:
                try:
                    provider = provider_from_settings(self.app.settings)
                except NoProvider:
                    raise ApiError(501, "not_configured", NOT_CONFIGURED_ON_SERVER) from None
                source = LakeSource(self.app.lake.engine)
                self._asker = Asker(self.app.settings, source, provider, self.app.runtime.clock, self.store)
            return self._asker

    async def call(self, fn: Callable[[Stop], T], request: Request) -> T:
        return await self.app.run_watched(self._threads, fn, request)

    def check_rate(self, request: Request) -> None:
        name = request.principal.name
        wait = self.limiter.check(name)
        if wait:
            self.outcomes.inc(("rate_limited",))
            retry = str(max(1, int(wait + 0.999)))
            raise ApiError(
                429,
                "rate_limited",
                f"key {name!r} asked more than {self.app.settings.llm_rate_per_minute:g} questions a minute "
                f"(llm_rate_per_minute); retry after {retry} s",
                headers=[(b"retry-after", retry.encode())],
            )

    def metric_lines(self) -> bytes:
        """Questions by outcome, and each provider's requests, tokens and estimated cost (all processes)."""
        settings = self.app.settings
        requests = Counter(
            "loglake_llm_requests_total",
            "Answered calls of the language model, by provider (failed ones: loglake_ask_questions_total).",
            ("provider",),
        )
        tokens = Counter("loglake_llm_tokens_total", "Tokens used, by provider and direction.", ("provider", "kind"))
        cost = Counter("loglake_llm_cost_usd_total", "Estimated cost of the tokens used, in USD.", ("provider",))
        try:
            uses = self.store.usage() if self._kept() else []
        except AskStoreBusy:  # another process holds ask.db: this scrape goes without its usage
            uses = []
        for use in uses:
            requests.inc((use.provider,), use.requests)
            tokens.inc((use.provider, "input"), use.input_tokens)
            tokens.inc((use.provider, "output"), use.output_tokens)
            spent = use.input_tokens * settings.llm_input_price + use.output_tokens * settings.llm_output_price
            cost.inc((use.provider,), spent / 1e6)
        lines: Iterable[str] = (*self.outcomes.render(), *requests.render(), *tokens.render(), *cost.render())
        return ("\n".join(lines) + "\n").encode()

    def _kept(self) -> bool:
        """Whether there is an ask.db to read (none is made for a scrape or a start), with a lake to ask."""
        opened = self._store is not None or (self.app.settings.data_dir / ASK_DB).exists()
        return opened and self.app.lake is not None

    def open(self) -> None:
        """Open an existing ask.db now (`loglake serve`, before it listens): one a newer loglake migrated stops the
        start, where the server said it was up and every scrape of /metrics (its token use) answered 500."""
        if self._kept():
            self.store.open()

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        if self._store is not None:
            self._store.close()


def ask_status(app: LoglakeApp) -> dict:
    """Whether questions can be asked here, and how to make them possible if not (the UI's Ask page, and
    `loglake ask --url` before its first question)."""
    settings = app.settings
    if not settings.llm_provider:
        return {"configured": False, "how": NOT_CONFIGURED_ON_SERVER}
    return {"configured": True, "provider": settings.llm_provider, "model": settings.llm_model}


async def status(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /ask")
    # Whether this key may write the rule a conversation drafts: `loglake ask --as-rule` says so before the
    # question, rather than after the model was paid for it.
    writes = {"writes_rules": request.principal.allows(RULE_WRITE_SCOPE), "rule_write_scope": RULE_WRITE_SCOPE}
    return Result(200, {**ask_status(app), **writes})


async def ask(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "POST /ask")
    body = _body(app, request, AskBody, '{"question": "how many errors did the api service log today?"}')
    asking = app.asking
    if body.run:
        require_scope(request.principal, app.router.exact["/query"]["POST"].scope or "read")
    asking.check_rate(request)
    owner = request.principal.name

    def answer_it(asker: Any, stop: Stop) -> dict[str, Any]:
        from loglake.ask.service import Question

        return asker.ask(Question(body.question, body.conversation_id, body.time_zone, owner), stop)

    answer = await _asked(asking, answer_it, request)
    asking.outcomes.inc(("cached" if answer["cached"] else "answered",))
    if body.run and answer["sql"] is not None:
        try:
            answer["result"] = await _run(app, request, answer["sql"])
        except ApiError as e:
            raise RunRefused(e, answer) from None
    return Result(200, answer)


class RunRefused(ApiError):
    """The run of an answer's SQL refused (a time-out, too large, busy): POST /query's error, with the answer beside
    it (its SQL, estimate and conversation), which the model's call made and the client would lose otherwise."""

    def __init__(self, error: ApiError, answer: dict[str, Any]) -> None:
        super().__init__(error.status, error.code, error.message, error.details, error.headers)
        self.answer = answer

    def body(self) -> dict[str, Any]:
        return super().body() | {"answer": self.answer}


async def explain(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "POST /ask/explain")
    body = _body(app, request, ExplainBody, '{"sql": "SELECT service, count(*) FROM logs GROUP BY ALL"}')
    app.asking.check_rate(request)
    return Result(200, await _asked(app.asking, lambda asker, stop: asker.explain_sql(body.sql, stop), request))


async def rule(app: LoglakeApp, request: Request, conversation_id: str) -> Result:
    refuse_parameters(request, "POST /ask/{conversationId}/rule")
    body = _body(app, request, RuleBody, '{"confirm": true}', empty_ok=True)
    if body.confirm:
        require_scope(request.principal, RULE_WRITE_SCOPE)
    owner = request.principal.name
    draft = await _asked(app.asking, lambda asker, _stop: asker.draft_rule(conversation_id, owner), request)
    answer: dict[str, Any] = {**draft.to_dict(), "written": None}
    if body.confirm:
        if draft.problems:
            raise ApiError(409, "invalid_rule", "the drafted rule does not load: " + "; ".join(draft.problems))
        # Imported here: rule files need pySigma, which Lambda's layer leaves out (aws/packaging.py).
        from loglake.ask.rule_draft import RuleExists, write_rule

        try:
            path = await app.run_read(write_rule, draft, app.settings.rules_path)
        except RuleExists as e:
            raise ApiError(409, "rule_exists", f"{e}: this answer's rule was written before") from None
        answer["written"] = str(path)
    return Result(200, answer)


async def _asked(asking: Asking, fn: Callable[[Any, Stop], T], request: Request) -> T:
    """Run `fn` with the Asker and the request's Stop on the ask threads, its errors as the API's."""
    try:
        return await asking.call(lambda stop: fn(asking.asker(), stop), request)
    except ASK_ERRORS as e:
        raise api_error(e, asking.outcomes) from None


def api_error(error: Exception, outcomes: Counter | None = None) -> ApiError:
    """The API's answer to one of ASK_ERRORS (counted in `outcomes` where it is a question's outcome)."""
    outcome, answer = _mapped(error)
    if outcome and outcomes is not None:
        outcomes.inc((outcome,))
    return answer


def _mapped(e: Exception) -> tuple[str | None, ApiError]:
    if isinstance(e, AskError):
        return "invalid", ApiError(400, "invalid_request", str(e))
    if isinstance(e, NoSuchConversation):
        message = (
            f"no conversation {e} of this key (they expire):"
            " a POST /ask without conversation_id starts one, and its answer names it"
        )
        return None, ApiError(404, "not_found", message)
    if isinstance(e, BudgetExhausted):
        retry = [(b"retry-after", str(e.retry_after_s).encode())]
        return "budget", ApiError(429, "token_budget_spent", str(e), headers=retry)
    if isinstance(e, ProviderError):
        headers = [(b"retry-after", b"5")] if e.status == 503 else []
        code = "model_unavailable" if e.status == 503 else "model_error"
        return "provider_error", ApiError(e.status, code, e.message, headers=headers)
    if isinstance(e, AnswerRefused):
        details = [{"field": "sql", "reason": e.sql}] if e.sql else []
        message = (
            f"the model's answers were refused {e.attempts} times; the last reason: {e.reason}. Rephrase the question"
        )
        return "refused", ApiError(502, "model_answer_refused", message, details)
    if isinstance(e, AskStoreBusy):  # another process (a `loglake ask`) held ask.db past the busy timeout
        return "busy", ApiError(503, "busy", str(e), [], [(b"retry-after", b"1")])
    assert isinstance(e, QueryError | QueryBusy)  # QueryBusy: the estimate plans on the query connections
    return None, query_error(e)


ASK_ERRORS = (
    AskError,
    NoSuchConversation,
    BudgetExhausted,
    ProviderError,
    AnswerRefused,
    AskStoreBusy,
    QueryError,
    QueryBusy,
)


async def _run(app: LoglakeApp, request: Request, sql: str) -> dict[str, Any]:
    """The answer's SQL as POST /query runs a query (a model's SQL is users' SQL: app.sql_engine)."""
    engine = app.sql_engine
    assert engine is not None  # (asking needs the lake)
    try:
        result = await app.run_query(lambda stop: engine.query(sql, stop=stop), request)
    except (QueryError, QueryBusy) as e:
        app.metrics.queries.inc((e.code if isinstance(e, QueryError) else "busy",))
        raise query_error(e) from None
    app.metrics.queries.inc(("ok",))
    return result_to_dict(result)


def _body(app: LoglakeApp, request: Request, kind: type[T], example: str, empty_ok: bool = False) -> T:
    if empty_ok and not decode_content(request, request.body, json_body_limit(app.settings)).strip():
        return msgspec.convert({}, kind)
    return json_struct(json_body(app, request, example), kind, example)


def _answer(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


_MODEL_ERRORS = {
    "429": error_response(
        "Rate limited (llm_rate_per_minute per key), or the question does not fit in what is left of today's "
        "token budget (spent, or held by questions being answered); see Retry-After"
    ),
    "501": error_response("No language model configured (llm_provider), or no lake"),
    "502": error_response("The model answered with an error, or its answers were refused (model_answer_refused)"),
    "503": error_response(
        "The model did not answer in time, was unreachable or overloaded, or ask.db was locked by another "
        "process; see Retry-After"
    ),
}

OPENAPI_PATHS = {
    "/ask": {
        "get": {
            "summary": "Whether this server can answer questions: its model, or how to configure one (read scope)",
            "responses": {
                "200": _answer(
                    "configured, and provider and model, or how (what to configure); writes_rules: whether this key "
                    "may write a drafted rule (confirm), which needs rule_write_scope"
                )
            },
        },
        "post": {
            "summary": "A question in plain language as checked SQL, with what it would scan (read scope)",
            "description": "The answer holds the SQL (one SELECT the POST /query sandbox accepts, with a LIMIT, "
            "and the question's time range when it names one), an explanation, the tables it reads, `time_range` "
            "(what its time predicates name), the estimate (lake files and bytes scanned after partition and "
            "row-group pruning, the span of those records, and `hot_records` not yet in the lake, read too) and "
            "warnings. "
            "Nothing runs unless `run` is true; then the rows come as POST /query's answer, under `result`, "
            "with the scope and limits of POST /query; a run POST /query would refuse is its error, with the "
            "answer beside it as `answer`. `conversation_id` continues a conversation of the same key.",
            "requestBody": json_request(
                {
                    "type": "object",
                    "required": ["question"],
                    "additionalProperties": False,
                    "properties": {
                        "question": {"type": "string", "minLength": 1, "maxLength": MAX_QUESTION_CHARS},
                        "conversation_id": {"type": ["string", "null"]},
                        "run": {"type": "boolean", "default": False},
                        "time_zone": {"type": "string", "default": "UTC", "example": "Europe/Berlin"},
                    },
                }
            ),
            "responses": {
                "200": _answer("sql, explanation, tables, time_range, estimate, warnings, conversation_id[, result]"),
                "404": error_response("No such conversation of this key (they expire)"),
                **_MODEL_ERRORS,
            },
        },
    },
    "/ask/explain": {
        "post": {
            "summary": "An SQL query explained in plain language, with what it would scan (read scope)",
            "requestBody": json_request(
                {
                    "type": "object",
                    "required": ["sql"],
                    "additionalProperties": False,
                    "properties": {"sql": {"type": "string"}},
                }
            ),
            "responses": {"200": _answer("sql, explanation, tables, time_range, estimate, warnings"), **_MODEL_ERRORS},
        }
    },
    "/ask/{conversationId}/rule": {
        "post": {
            "summary": "The conversation's last answer drafted as a SQL detection rule; written with confirm (admin)",
            "description": "Without a body or with confirm false, the draft (YAML, validated by the rules loader). "
            "With confirm true (admin scope), the draft is written into the rules folder.",
            "parameters": [{"name": "conversationId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": json_request(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"confirm": {"type": "boolean", "default": False}},
                },
                required=False,
            ),
            "responses": {
                "200": _answer("file, yaml, valid, problems, warnings, written (the path, once written)"),
                "404": error_response("No such conversation of this key"),
                "409": error_response("The draft does not load, or its file exists already"),
                "501": _MODEL_ERRORS["501"],
            },
        }
    },
}
