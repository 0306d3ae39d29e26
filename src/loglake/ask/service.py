"""Asking, as one use case for every edge (HTTP, CLI): a question (and its conversation) in; the
checked SQL, its explanation, the tables and time it reads and what it would scan out. Nothing runs
here: the edges run an answer's SQL through the query engine like any POST /query.

A model's answer the guard refuses goes back to the model with the reason, at most MAX_RETRIES
times; then the refusal is the answer's error. Answers are cached by the exact normalised question,
the schema's version and the conversation's state (every earlier question and SQL), so a question
and its negation never share an answer, nor do the same words in two different conversations.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loglake.ask.errors import MAX_QUESTION_CHARS, AnswerRefused, AskError, BudgetExhausted
from loglake.ask.estimate import Estimate, Estimator
from loglake.ask.footers import Footers
from loglake.ask.guard import Refusal, check_sql, implied_range, read_answer, read_explanation, tables_read
from loglake.ask.prompt import DIALECTS, Prompt, PromptBuilder
from loglake.ask.providers import Completion, Message, Provider, most_tokens
from loglake.ask.store import AskStore, ConversationStore, Turn
from loglake.config import Settings
from loglake.lake.query import QueryEngine
from loglake.lake.sql_guard import NESTED_TOO_DEEP, QueryError
from loglake.lake.stop import Stop

if TYPE_CHECKING:
    from loglake.ask.rule_draft import RuleDraft

# What a cached answer keeps for loglake only: not shown, not in its turn.
_KEPT_ONLY = frozenset({"sql_warnings", "time_bound"})
MAX_RETRIES = 2  # a refused answer goes back to the model this many times at most
BUSY_RETRY_S = 5  # when the rest of the day's budget is held by calls under way, they end within seconds
EXPLAIN_SYSTEM = (
    "You explain {dialect} SQL over loglake's log tables to people who do not read SQL: in two to four plain "
    "sentences, say what the query returns, which records it looks at and over what time. No SQL in the answer."
)


@dataclass(frozen=True)
class Question:
    text: str
    conversation_id: str | None = None
    time_zone: str = "UTC"
    owner: str = ""  # the asking key's name: conversations are its own


class Source(Protocol):
    """Where answers' SQL would run: the prompt that describes it, and what a query would scan there."""

    dialect: str  # sqlglot's name of the SQL dialect: duckdb here, athena on AWS
    table_names: Collection[str]  # what a query may read
    max_rows: int  # the most rows an answer returns (the LIMIT the guard enforces)

    def prompt(self, now_ms: int, time_zone: str) -> Prompt: ...

    def estimate(self, sql: str, now_ms: int | None = None) -> Estimate:
        """What `sql` would scan, its now() read as `now_ms`; QueryError when it cannot run there (the model is
        told why)."""
        ...


class LakeSource:
    """The local lake through the DuckDB engine: the catalog and footers describe it (prompt.py), the
    plan and footers estimate (estimate.py)."""

    dialect = "duckdb"

    def __init__(self, engine: QueryEngine) -> None:
        footers = Footers(engine.lake)
        self.engine = engine
        self.prompts = PromptBuilder(engine, footers)
        self.estimator = Estimator(engine, footers)

    @property
    def table_names(self) -> Collection[str]:
        return self.engine.table_names

    @property
    def max_rows(self) -> int:
        return self.engine.limits.max_rows

    def prompt(self, now_ms: int, time_zone: str) -> Prompt:
        return self.prompts.build(now_ms, time_zone, self.max_rows)

    def estimate(self, sql: str, now_ms: int | None = None) -> Estimate:
        return self.estimator.estimate(sql, now_ms)


class Asker:
    def __init__(
        self,
        settings: Settings,
        source: Source,
        provider: Provider,
        clock: Callable[[], float] = time.time,
        store: ConversationStore | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.provider = provider
        self.store = store or AskStore(settings.data_dir, clock, settings.llm_conversation_hours * 3_600_000)
        self.clock = clock

    def ask(self, question: Question, stop: Stop | None = None) -> dict[str, Any]:
        """The answer (see README: POST /ask); it is also the conversation's new turn. Told to stop
        (`stop`), a model call in flight is cut and Stopped raised (as by explain_sql)."""
        text = _checked_question(question.text)
        _check_zone(question.time_zone)
        history = self.store.turns(question.conversation_id, question.owner) if question.conversation_id else []
        now_ms = self._now_ms()
        prompt = self.source.prompt(now_ms, question.time_zone)
        key = cache_key(text, prompt.schema_version, history, question.time_zone)
        made = self.store.cached(key)
        if made is not None and made.get("time_bound", True) and made["generated_at"] != _moment(now_ms):
            made = None  # its time literals were computed from an earlier "now" than the prompt's
        cached = made is not None
        if made is None:
            made, estimate = self._answer(text, prompt.system, history, now_ms, question.time_zone, stop)
            self.store.cache(key, made)
        else:  # the data moved on since it was made: estimated afresh
            estimate = self.source.estimate(made["sql"], now_ms) if made["sql"] is not None else None
        answer = {name: value for name, value in made.items() if name not in _KEPT_ONLY}
        answer["cached"] = cached
        answer.update(_scanned(estimate, made["sql_warnings"]))
        answer["conversation_id"] = self.store.add_turn(question.conversation_id, question.owner, text, answer)
        return answer

    def explain_sql(self, sql: str, stop: Stop | None = None) -> dict[str, Any]:
        """A user's SQL in plain language, with what it would scan (the sandbox checks it first)."""
        sql = sql.strip().rstrip(";").strip()
        try:
            scanned = _scanned(self.source.estimate(sql, self._now_ms()), [])
            tables = tables_read(sql, self.source.dialect)  # (before the model is paid to explain it)
        except QueryError as e:
            raise AskError(f"the SQL cannot run here: {e.message}") from None
        except RecursionError:  # sqlglot's parse (the estimate's time bounds, the tables) recurses per level
            raise AskError(f"the SQL cannot run here: {NESTED_TOO_DEEP}") from None
        system = EXPLAIN_SYSTEM.format(dialect=DIALECTS[self.source.dialect])
        completion = self._complete(system, [Message("user", sql)], stop)
        explanation = read_explanation(completion.text)
        return {"sql": sql, "explanation": explanation, "tables": tables, **scanned}

    def draft_rule(self, conversation_id: str, owner: str, validate: bool = True) -> RuleDraft:
        """A rule from the conversation's last answer with SQL; `validate`: by the rules loader, which
        needs pySigma (not in Lambda's layer, aws/packaging.py)."""
        from loglake.ask.rule_draft import draft_rule

        turns = self.store.turns(conversation_id, owner)
        answered = [t for t in turns if t.answer.get("sql")]
        if not answered:
            raise AskError("the conversation has no answer with SQL yet; ask a question first")
        last = answered[-1]
        explanation = last.answer.get("explanation", "")
        return draft_rule(
            last.question, last.answer["sql"], explanation, self.source.dialect, validate, seed=conversation_id
        )

    # -- internals ------------------------------------------------------------------------------

    def _answer(
        self, text: str, system: str, history: list[Turn], now_ms: int, zone: str, stop: Stop | None
    ) -> tuple[dict[str, Any], Estimate | None]:
        """The model's answer as checked (see module doc), with its estimate; AnswerRefused after MAX_RETRIES."""
        messages = [m for turn in history for m in _turn_messages(turn)] + [Message("user", text)]
        implied = implied_range(text, now_ms, zone)
        reason, sql = "", None
        for attempt in range(1, MAX_RETRIES + 2):
            completion = self._complete(system, messages, stop)
            try:
                answer = read_answer(completion.text)
                if answer.sql is None:  # the model says it cannot answer from these tables
                    return _made(None, answer.explanation, [], [], [], attempt, now_ms), None
                sql = answer.sql
                source = self.source
                checked = check_sql(sql, source.table_names, source.max_rows, implied, source.dialect)
                # locally it binds it: an unknown column is refused here
                estimate = source.estimate(checked.sql, now_ms)
            except (Refusal, QueryError) as e:
                reason = e.message if isinstance(e, QueryError) else str(e)
                retry = f"That answer was refused: {reason}. Answer the question again, following the rules."
                messages += [Message("assistant", completion.text), Message("user", retry)]
                continue
            changes = []
            if checked.added_limit:
                changes.append(f"LIMIT {self.source.max_rows} added (the most rows an answer returns)")
            if checked.added_time_range and implied is not None:
                changes.append(f"the time range of {implied.phrase!r} added (the SQL filtered on no time)")
            made = _made(
                checked.sql,
                answer.explanation,
                checked.tables,
                changes,
                checked.warnings,
                attempt,
                now_ms,
                checked.on_time,
            )
            return made, estimate
        raise AnswerRefused(reason, sql, MAX_RETRIES + 1)

    def _complete(self, system: str, messages: list[Message], stop: Stop | None) -> Completion:
        """One call of the model within today's token budget: the most it can use is reserved first
        (so that calls at once cannot together pass the budget), then what it used is recorded."""
        now = self.clock()
        day = datetime.fromtimestamp(now, UTC).date().isoformat()
        budget = self.settings.llm_daily_tokens
        name = self.provider.name
        held = most_tokens(system, messages) if budget else 0
        if budget:
            found = self.store.reserve(name, day, held, budget)
            if not found.granted:
                raise _budget_refusal(name, budget, held, found.used, found.held, now)
        try:
            completion = self.provider.complete(system, messages, stop)
        except BaseException:
            self.store.release(name, day, held)
            raise
        self.store.settle(name, day, held, completion.input_tokens, completion.output_tokens)
        return completion

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def _budget_refusal(provider: str, budget: int, wanted: int, used: int, held: int, now: float) -> BudgetExhausted:
    """Why a call does not fit in today's budget, and when to try again."""
    midnight = (int(now) // 86400 + 1) * 86400
    until_midnight = max(1, midnight - int(now))
    where = f"the {provider} provider's daily token budget ({budget:,} tokens, llm_daily_tokens)"
    if wanted > budget:
        return BudgetExhausted(
            f"a question may use up to {wanted:,} tokens (its prompt and the longest answer), more than {where}; "
            "raise llm_daily_tokens",
            until_midnight,
        )
    if used + wanted > budget:
        return BudgetExhausted(f"today's part of {where} is spent; it renews at 00:00 UTC", until_midnight)
    return BudgetExhausted(
        f"the rest of {where} is held by questions being answered right now ({held:,} tokens); retry in a few seconds",
        BUSY_RETRY_S,
    )


def cache_key(question: str, schema_version: str, history: list[Turn], time_zone: str) -> str:
    """The exact normalised question (case and spacing only: every word counts), the schema's version,
    the conversation so far and the time zone."""
    state = [(t.question, t.answer.get("sql")) for t in history]
    material = json.dumps([normalised(question), schema_version, state, time_zone])
    return hashlib.sha256(material.encode()).hexdigest()


def normalised(question: str) -> str:
    return " ".join(question.split()).casefold()


def _turn_messages(turn: Turn) -> list[Message]:
    sql = turn.answer.get("sql")
    said = f"```sql\n{sql}\n```\n{turn.answer.get('explanation', '')}" if sql else turn.answer.get("explanation", "")
    return [Message("user", turn.question), Message("assistant", said)]


def _made(
    sql: str | None,
    explanation: str,
    tables: list[str],
    changes: list[str],
    sql_warnings: list[str],
    attempts: int,
    now_ms: int,
    time_bound: bool = False,
) -> dict[str, Any]:
    """What an answer keeps (cached, and in its turn): the model's part, as checked."""
    return {
        "sql": sql,
        "explanation": explanation,
        "tables": tables,
        "changes": changes,  # what loglake changed in the model's SQL
        "sql_warnings": sql_warnings,
        "time_bound": time_bound,
        "attempts": attempts,
        "generated_at": _moment(now_ms),
    }


def _moment(now_ms: int) -> str:
    """The current time as the prompt states it (to the second): an answer bound by time is valid then only."""
    return datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _scanned(estimate: Estimate | None, sql_warnings: list[str]) -> dict[str, Any]:
    """What the answer would read, and every warning about it."""
    if estimate is None:
        return {"time_range": None, "estimate": None, "warnings": []}
    return {
        "time_range": estimate.time_range(),
        "estimate": estimate.to_dict(),
        "warnings": [*sql_warnings, *estimate.warnings],
    }


def _checked_question(text: str) -> str:
    text = text.strip()
    if not text:
        raise AskError("the question is empty; ask e.g. 'how many errors did the api service log today?'")
    if len(text) > MAX_QUESTION_CHARS:
        raise AskError(f"the question is longer than {MAX_QUESTION_CHARS} characters; ask something shorter")
    return text


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise AskError(f"time_zone {name!r} is not an IANA time zone name like 'Europe/Berlin' or 'UTC'") from None
