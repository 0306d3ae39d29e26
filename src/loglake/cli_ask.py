"""`loglake ask`: questions in plain language over a data dir, a thin layer over loglake.ask."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from loglake.cli_lake import local_runtime, print_result
from loglake.cli_options import CONTEXT, data_dir_option, json_text, printable, settings_options

ASK_PROMPT = "ask> "
INTERACTIVE_HELP = (
    "Ask a question; follow-ups continue the conversation. /run runs the last answer, /rule drafts a rule "
    "from it, /quit ends."
)


@click.command(context_settings=CONTEXT)
@click.argument("question", required=False)
@click.option("--conversation", "conversation_id", default=None, help="Continue this conversation (its id).")
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
@data_dir_option
@settings_options("llm_")
def ask(
    question: str | None,
    conversation_id: str | None,
    run: bool,
    explain_sql: str | None,
    as_rule: bool,
    yes: bool,
    time_zone: str,
    as_json: bool,
    data_dir: Path,
    **llm: Any,
) -> None:
    """Ask about your logs in plain language: the answer is checked SQL with what it would scan.

    Nothing runs without --run. Without a question, asks interactively (a conversation).

    \b
    Examples:
      loglake ask "how many errors did the api service log per hour today?"
      loglake ask --run --conversation ID "only for service payments"
      loglake ask --explain-sql "SELECT service, count(*) FROM logs GROUP BY ALL"
      loglake ask --as-rule "failed logins from one address in the last hour"
    """
    from loglake.ask.errors import NoProvider
    from loglake.ask.providers import provider_from_settings
    from loglake.ask.service import Asker

    with local_runtime(data_dir, {name: value for name, value in llm.items() if value is not None}) as runtime:
        try:
            provider = provider_from_settings(runtime.settings)
        except NoProvider as e:
            raise click.ClickException(str(e)) from None
        asker = Asker(runtime.settings, runtime.lake.engine, provider)
        try:
            session = _Session(asker, runtime, time_zone, as_json, conversation_id)
            if explain_sql is not None:
                session.explain(explain_sql)
            elif question is not None:
                session.ask(question)
                if run:
                    session.run()
                if as_rule:
                    session.rule(yes)
            else:
                session.interactive(yes)
        finally:
            asker.store.close()


class _Session:
    def __init__(self, asker: Any, runtime: Any, time_zone: str, as_json: bool, conversation_id: str | None) -> None:
        self.asker = asker
        self.runtime = runtime
        self.time_zone = time_zone
        self.as_json = as_json
        self.conversation_id = conversation_id
        self.last: dict[str, Any] | None = None

    def ask(self, text: str) -> None:
        from loglake.ask.service import Question

        with _errors():
            answer = self.asker.ask(Question(text, self.conversation_id, self.time_zone))
        self.conversation_id = answer["conversation_id"]
        self.last = answer
        _show(answer, self.as_json)

    def explain(self, sql: str) -> None:
        with _errors():
            answer = self.asker.explain_sql(sql)
        _show(answer, self.as_json)

    def run(self) -> None:
        from loglake.lake.query_answers import result_to_dict

        if not self.last or not self.last["sql"]:
            raise click.ClickException("there is no answer with SQL to run yet")
        with _errors():
            result = result_to_dict(self.runtime.lake.engine.query(self.last["sql"]))
        print_result(result, "json" if self.as_json else "table")

    def rule(self, yes: bool) -> None:
        from loglake.ask.rule_draft import write_rule

        if self.conversation_id is None:
            raise click.ClickException("there is no answer to draft a rule from yet")
        with _errors():
            draft = self.asker.draft_rule(self.conversation_id, "")
        click.echo(printable(draft.text, multiline=True))
        if draft.problems:
            raise click.ClickException("the drafted rule does not load: " + "; ".join(draft.problems))
        folder = self.runtime.settings.rules_path
        if yes or click.confirm(f"Write it to {folder / draft.file_name}?", default=False):
            with _errors():
                click.echo(f"written: {write_rule(draft, folder)}")

    def interactive(self, yes: bool) -> None:
        click.echo(INTERACTIVE_HELP, err=True)
        while True:
            click.echo(ASK_PROMPT, nl=False, err=True)
            line = sys.stdin.readline()
            if not line or line.strip() in ("/quit", "/exit"):
                return
            command = line.strip()
            try:
                if command == "/run":
                    self.run()
                elif command == "/rule":
                    self.rule(yes)
                elif command:
                    self.ask(command)
            except click.ClickException as e:  # the session goes on
                click.echo(f"Error: {printable(e.message, multiline=True)}", err=True)


class _errors:
    """The library's errors as the CLI's (the message says what to do next)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> None:
        from loglake.ask.errors import AnswerRefused, AskError, BudgetExhausted, ProviderError
        from loglake.ask.rule_draft import RuleExists
        from loglake.ask.store import NoSuchConversation
        from loglake.lake.query_answers import QueryBusy
        from loglake.lake.sql_guard import QueryError

        if isinstance(error, ProviderError | AskError | BudgetExhausted | RuleExists | QueryBusy):
            raise click.ClickException(str(error)) from None
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
    if answer.get("estimate"):
        from loglake.ask.estimate import human_bytes

        e = answer["estimate"]
        span = answer["time_range"]
        click.echo(
            f"\nreads {', '.join(answer['tables'])}: {e['files']:,} of {e['total_files']:,} lake files, "
            f"{human_bytes(e['bytes'])} of {human_bytes(e['total_bytes'])}"
            + (f", records from {span['since']} to {span['until']}" if span["since"] else "")
        )
    for warning in answer.get("warnings", []):
        click.echo(f"warning: {printable(warning)}", err=True)
    if "conversation_id" in answer:
        click.echo(f"conversation: {answer['conversation_id']}", err=True)


COMMANDS = [ask]
