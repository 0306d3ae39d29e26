"""`loglake ask`: questions in plain language, a thin layer over loglake.ask: in a data dir (with the
model configured here), or through a running server's POST /ask (--url, with the server's model)."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import click

from loglake.cli_lake import local_runtime, print_result
from loglake.cli_options import (
    CONTEXT,
    Named,
    checked_url,
    command_settings,
    data_dir_option,
    json_text,
    key_option,
    printable,
    settings_options,
    until_ctrl_c,
)
from loglake.config import env_name, flag_name

ASK_PROMPT = "ask> "
# The interactive session's commands and what each does: its help line and the refusal of a mistyped one
# (a line starting with "/" that is none of them) list these.
SESSION_COMMANDS = {"/run": "runs the last answer", "/rule": "drafts a rule from it", "/quit": "ends"}
QUIT = ("/quit", "/exit")
INTERACTIVE_HELP = "Ask a question; follow-ups continue the conversation. " + (
    ", ".join(f"{name} {does}" for name, does in SESSION_COMMANDS.items()) + "."
)
ASK_TIMEOUT_S = 600.0  # a server's answer may take a model's few attempts, each up to its llm_timeout_seconds


@click.command(context_settings=CONTEXT)
@click.argument("question", required=False)
@click.option(
    "--conversation",
    "conversation_id",
    type=Named("the id of a conversation (each answer prints it)"),
    default=None,
    help="Continue this conversation (its id).",
)
@click.option("--run", "run", is_flag=True, help="Run the answer's SQL (the sandbox and limits of POST /query).")
@click.option("--explain-sql", "explain_sql", default=None, metavar="SQL", help="Explain this SQL in plain language.")
@click.option(
    "--as-rule", "as_rule", is_flag=True, help="Draft a detection rule from the answer; write it if confirmed."
)
@click.option("--yes", is_flag=True, help="With --as-rule: write the rule without asking.")
@click.option(
    "--time-zone", default="UTC", show_default=True, help="Your IANA time zone ('today' starts at its midnight)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option(
    "--url",
    envvar=env_name("url"),
    default=None,
    callback=checked_url,
    help=f"Ask this running server (POST /ask, its model) instead of a data folder [env {env_name('url')}].",
)
@key_option
@data_dir_option
@settings_options("llm_")
@click.pass_context
def ask(
    ctx: click.Context,
    question: str | None,
    conversation_id: str | None,
    run: bool,
    explain_sql: str | None,
    as_rule: bool,
    yes: bool,
    time_zone: str,
    as_json: bool,
    url: str | None,
    api_key: str | None,
    data_dir: Path,
    **llm: Any,
) -> None:
    """Ask about your logs in plain language: the answer is checked SQL with what it would scan.

    Nothing runs without --run. Without a question, asks interactively (a conversation). With --url,
    a running server answers with its model and its data (the key needs the read scope; --run what
    POST /query needs; writing a rule, admin).

    \b
    Examples:
      loglake ask "how many errors did the api service log per hour today?"
      loglake ask --run --conversation ID "only for service payments"
      loglake ask --explain-sql "SELECT service, count(*) FROM logs GROUP BY ALL"
      loglake ask --as-rule "failed logins from one address in the last hour"
      loglake ask --url https://logs.example.com "errors by service today"
    """
    overrides = {name: value for name, value in llm.items() if value is not None}
    # (--config on the command line too: its file configures a local ask, the model and the data dir)
    local_flags = [name for name in (*overrides, "config") if _given(ctx, name)]
    url_exported = url is not None and not _given(ctx, "url")  # (as `loglake serve` suggests)
    if url_exported and (_given(ctx, "data_dir") or local_flags):
        url = None  # a URL only exported yields to a local ask the flags name
    if url is not None:
        if _given(ctx, "data_dir"):
            raise click.UsageError("give --url (a server) or --data-dir (a data folder), not both")
        if local_flags:
            flags = ", ".join(map(flag_name, local_flags))
            raise click.UsageError(f"{flags}: with --url the server's model answers; these configure a local one")
        from loglake.client import LoglakeClient

        with LoglakeClient(url, api_key, timeout=ASK_TIMEOUT_S) as client:
            session = _RemoteSession(client, time_zone, as_json, conversation_id)
            writes_rule = as_rule and question is not None and explain_sql is None
            if (question is None and explain_sql is None) or url_exported or writes_rule:
                status = _check_server_model(client, url if url_exported else None)
                session.rule_refusal = _rule_refusal(status)
                if writes_rule and session.rule_refusal:  # (said before the model is asked, and paid)
                    raise click.ClickException(f"{session.rule_refusal}; or ask without --as-rule")
            _converse(session, question, explain_sql, run, as_rule, yes)
        return
    _check_provider(data_dir, overrides)
    from loglake.ask.providers import provider_from_settings
    from loglake.ask.service import Asker, LakeSource

    with local_runtime(data_dir, overrides) as runtime:
        asker = Asker(runtime.settings, LakeSource(runtime.lake.engine), provider_from_settings(runtime.settings))
        try:
            _converse(
                _LocalSession(asker, runtime, time_zone, as_json, conversation_id),
                question,
                explain_sql,
                run,
                as_rule,
                yes,
            )
        finally:
            asker.store.close()


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the command line itself gave the option (not the environment or a default)."""
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def _check_provider(data_dir: Path, overrides: dict[str, Any]) -> None:
    """Without a model there is nothing to ask, whatever the data: said first."""
    from loglake.ask.providers import NOT_CONFIGURED

    if not command_settings({"data_dir": data_dir, **overrides}).llm_provider:
        raise click.ClickException(NOT_CONFIGURED)


def _check_server_model(client: Any, exported_url: str | None) -> dict[str, Any]:
    """Before an interactive conversation, what the first question would be told: the server has no model.
    A server that cannot say (an older one, the AWS deployment's API) is asked anyway. `exported_url`: the
    server was asked only because the environment names it, where a person who gave no --url may expect this
    command to run a model itself: how it does is said too. The server's status (GET /ask), empty if it could not
    say."""
    from loglake.ask.providers import OLLAMA
    from loglake.client import ClientError

    try:
        status = client.ask_status()
    except ClientError:
        return {}
    if status.get("configured", True):
        return status
    how = status["how"]
    if exported_url is not None:
        how += (
            f"\nThis command asked that server because {env_name('url')} names it ({exported_url}). To have it run "
            f"a model itself, over a data folder (--data-dir), give it the --llm-* flags instead, e.g. {OLLAMA}."
        )
    raise click.ClickException(how)


def _rule_refusal(status: dict[str, Any]) -> str | None:
    """Why this key cannot write the rule a conversation drafts, as GET /ask says (a server from before it said
    nothing: the write is tried)."""
    if status.get("writes_rules", True):
        return None
    scope = status["rule_write_scope"]
    return (
        f"writing a rule needs a key with the {scope!r} scope, which this key lacks: `loglake keys create --name "
        f"NAME --scopes {scope}` on the server's data dir makes one"
    )


def _converse(
    session: _Session, question: str | None, explain_sql: str | None, run: bool, as_rule: bool, yes: bool
) -> None:
    if explain_sql is not None:
        session.explain(explain_sql)
    elif question is not None:
        session.ask(question, run)
        if as_rule:
            session.rule(yes)
    else:
        session.interactive(yes)


class _Session(ABC):
    """A conversation as the terminal shows it; the subclasses ask a data dir or a server, and give
    answers as POST /ask, /ask/explain, /query and /ask/{id}/rule give them."""

    rules_folder: str  # where a confirmed rule goes, as the prompt names it
    rule_refusal: str | None = None  # why a drafted rule cannot be written here, known before it is drafted

    def __init__(self, time_zone: str, as_json: bool, conversation_id: str | None) -> None:
        self.time_zone = time_zone
        self.as_json = as_json
        self.conversation_id = conversation_id
        self.last: dict[str, Any] | None = None

    def ask(self, text: str, run: bool = False) -> None:
        answer = self._ask(text, run)
        self.conversation_id = answer["conversation_id"]
        self.last = answer
        if not (run and answer.get("sql")):
            _show(answer, self.as_json)
        elif self.as_json:  # one document, as POST /ask answers "run": its rows the answer's `result` (the answer,
            try:  # then the rows, were two documents, no JSON a script could read); a run refused: the answer alone
                answer = answer | {"result": answer["result"] if "result" in answer else self._run(answer["sql"])}
            finally:
                _show(answer, True)
        else:
            _show(answer, False)
            print_result(answer["result"] if "result" in answer else self._run(answer["sql"]), "table")

    def explain(self, sql: str) -> None:
        _show(self._explain(sql), self.as_json)

    def run(self) -> None:
        if not self.last or not self.last["sql"]:
            raise click.ClickException("there is no answer with SQL to run yet")
        print_result(self._run(self.last["sql"]), self._format)

    def rule(self, yes: bool) -> None:
        if self.conversation_id is None:
            raise click.ClickException("there is no answer to draft a rule from yet")
        draft = self._draft()
        click.echo(printable(draft["yaml"], multiline=True))
        for warning in draft.get("warnings", []):  # a server from before warnings sends none
            click.echo(printable(f"warning: {warning}"), err=True)
        if draft["problems"]:
            raise click.ClickException("the drafted rule does not load: " + "; ".join(draft["problems"]))
        if self.rule_refusal:  # a draft is the read scope's; no prompt to write what would be refused
            raise click.ClickException(self.rule_refusal)
        if yes or click.confirm(f"Write it ({draft['file']}) to {self.rules_folder}?", default=False):
            click.echo(f"written: {self._write()}")

    def interactive(self, yes: bool) -> None:
        click.echo(INTERACTIVE_HELP, err=True)
        while True:
            click.echo(ASK_PROMPT, nl=False, err=True)
            line = sys.stdin.readline()
            command = line.strip()
            if not line or command in QUIT:
                return
            try:
                if command == "/run":
                    self.run()
                elif command == "/rule":
                    self.rule(yes)
                elif command.startswith("/"):  # a mistyped command is not a question for the model
                    raise click.ClickException(
                        f"unknown command {command.split()[0]}; commands: {', '.join(SESSION_COMMANDS)}"
                    )
                elif command:
                    self.ask(command)
            except click.ClickException as e:  # the session goes on
                click.echo(f"Error: {printable(e.message, multiline=True)}", err=True)

    @property
    def _format(self) -> str:
        return "json" if self.as_json else "table"

    @abstractmethod
    def _ask(self, text: str, run: bool) -> dict[str, Any]: ...

    @abstractmethod
    def _explain(self, sql: str) -> dict[str, Any]: ...

    @abstractmethod
    def _run(self, sql: str) -> dict[str, Any]: ...

    @abstractmethod
    def _draft(self) -> dict[str, Any]: ...

    @abstractmethod
    def _write(self) -> str:
        """Write the rule just drafted; where it went."""


class _LocalSession(_Session):
    def __init__(self, asker: Any, runtime: Any, time_zone: str, as_json: bool, conversation_id: str | None) -> None:
        super().__init__(time_zone, as_json, conversation_id)
        self.asker = asker
        self.runtime = runtime
        self.rules_folder = str(runtime.settings.rules_path)
        self._drafted: Any = None

    def _ask(self, text: str, run: bool) -> dict[str, Any]:
        from loglake.ask.service import Question

        with _errors():
            return until_ctrl_c(lambda stop: self.asker.ask(Question(text, self.conversation_id, self.time_zone), stop))

    def _explain(self, sql: str) -> dict[str, Any]:
        with _errors():
            return until_ctrl_c(lambda stop: self.asker.explain_sql(sql, stop))

    def _run(self, sql: str) -> dict[str, Any]:
        from loglake.lake.query_answers import result_to_dict

        with _errors():
            return result_to_dict(until_ctrl_c(lambda stop: self.runtime.lake.engine.query(sql, stop=stop)))

    def _draft(self) -> dict[str, Any]:
        with _errors():
            self._drafted = self.asker.draft_rule(self.conversation_id, "")
        return self._drafted.to_dict()

    def _write(self) -> str:
        from loglake.ask.rule_draft import write_rule

        with _errors():
            return str(write_rule(self._drafted, self.runtime.settings.rules_path))


class _RemoteSession(_Session):
    """Through a server: POST /ask (with run), /query for /run, /ask/{id}/rule to draft and to write."""

    rules_folder = "the server's rules folder"

    def __init__(self, client: Any, time_zone: str, as_json: bool, conversation_id: str | None) -> None:
        super().__init__(time_zone, as_json, conversation_id)
        self.client = client

    def _ask(self, text: str, run: bool) -> dict[str, Any]:
        # (never run: ask() runs the answer through POST /query once it is shown, so a run refused, a time-out, is
        # said after the SQL, not instead of it)
        body = {"question": text, "conversation_id": self.conversation_id, "time_zone": self.time_zone}
        with _errors():
            return self.client.ask(body)

    def _explain(self, sql: str) -> dict[str, Any]:
        with _errors():
            return self.client.explain_sql(sql)

    def _run(self, sql: str) -> dict[str, Any]:
        with _errors():
            return self.client.query(sql)

    def _draft(self) -> dict[str, Any]:
        with _errors():
            return self.client.draft_rule(self.conversation_id, confirm=False)

    def _write(self) -> str:
        with _errors():
            return self.client.draft_rule(self.conversation_id, confirm=True)["written"]


class _errors:
    """The library's and the client's errors as the CLI's (the message says what to do next)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> None:
        from loglake.ask.errors import AnswerRefused, AskError, BudgetExhausted, ProviderError
        from loglake.ask.rule_draft import RuleExists
        from loglake.ask.store import AskStoreBusy, NoSuchConversation
        from loglake.client import ClientError
        from loglake.lake.query_answers import QueryBusy
        from loglake.lake.sql_guard import QueryError

        if isinstance(error, ProviderError | AskError | BudgetExhausted | RuleExists | QueryBusy | ClientError):
            raise click.ClickException(str(error)) from None
        if isinstance(error, AskStoreBusy):
            raise click.ClickException(f"{error} (a server or another `loglake ask` is writing it)") from None
        if isinstance(error, QueryError):
            raise click.ClickException(error.message) from None
        if isinstance(error, AnswerRefused):
            raise click.ClickException(f"the model's answers were refused; the last reason: {error.reason}") from None
        if isinstance(error, NoSuchConversation):
            raise click.ClickException(f"no conversation {error} (they expire); leave --conversation out") from None


def _show(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json_text(answer, indent=2))
        return
    if answer.get("sql"):
        click.echo(printable(answer["sql"], multiline=True))
        click.echo()
    click.echo(printable(answer.get("explanation") or "", multiline=True))
    if answer.get("changes"):  # as the web UI says it: what ran is not what the model wrote
        click.echo()  # (outside printable, which shows a line break in a model's text as ⏎)
        click.echo(printable(f"loglake changed the model's SQL: {'; '.join(answer['changes'])}"))
    if answer.get("estimate"):
        from loglake.ask.estimate import human_bytes

        e = answer["estimate"]
        span = answer["time_range"]
        click.echo(f"\ntime range: {_range_text(span)}")
        if not answer["tables"]:  # (SELECT 1, FROM range(...): "reads : 0 of 0 lake files" said nothing)
            click.echo("reads no table")
        else:
            click.echo(
                f"reads {', '.join(answer['tables'])}: {e['files']:,} of {e['total_files']:,} lake files, "
                f"{human_bytes(e['bytes'])} of {human_bytes(e['total_bytes'])}"
                + (f" (their records from {e['data_since']} to {e['data_until']})" if e["data_since"] else "")
            )
        if e.get("hot_records"):
            click.echo(f"and {e['hot_records']:,} records not yet in the lake (the hot store; not in the bytes)")
    for warning in answer.get("warnings", []):
        click.echo(f"warning: {printable(warning)}", err=True)
    if "conversation_id" in answer:
        click.echo(f"conversation: {answer['conversation_id']}", err=True)


COMMANDS = [ask]


def _range_text(span: dict[str, Any]) -> str:
    """The query's time range as its predicates name it (computed from now(): as of this answer)."""
    since, until = span["since"], span["until"]
    if since is None and until is None:
        return "all time (the query names no time)"
    relative = " (relative to now(): the range moves with each run)" if span.get("relative_to_now") else ""
    return f"{since or 'the first record'} to {until or 'now'}{relative}"
