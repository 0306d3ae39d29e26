"""`loglake alerts ...`: list, show, acknowledge and resolve alerts, list deliveries and retry a dead
one, through a server (--url) or in a data dir (--data-dir), as `loglake query` does. Both give the
API's answers, so the output is the same."""

from __future__ import annotations

import contextlib
import getpass
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from loglake.alerts.db import ALERT_STATUSES
from loglake.cli_options import (
    CONTEXT,
    Named,
    SafeErrors,
    check_times,
    config_option,
    json_text,
    key_option,
    print_columns,
    printable,
    server_refused,
    shown_json,
    url_option,
    values_refused,
)
from loglake.cli_rules_folder import RULE_ID, find_rule_in, rules_dir_option, rules_settings
from loglake.client import ClientError, LoglakeClient

T = TypeVar("T")
ACTIONS = {"ack": ("acknowledge", "acknowledged"), "resolve": ("resolve", "resolved")}
ALERT_ID = Named("an alert's id, or a part of it")

_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Use the alerts of this data folder directly instead of a server (--url).",
)


def data_dir_option(command: Callable) -> Callable:
    """--data-dir, with the --config its rules folder is then read from."""
    return _data_dir(config_option(command))


@click.group(cls=SafeErrors, context_settings=CONTEXT)
def alerts() -> None:
    """The alerts detection rules raised: list, show, acknowledge and resolve them; list their
    deliveries and retry a dead-lettered one.

    \b
    Changing an alert or retrying a delivery needs a key with the `alerts` (or `admin`) scope; the
    key's name is recorded as who changed an alert (with --data-dir: your user name).
    """


@alerts.command("list", context_settings=CONTEXT)
@click.option("--status", default=None, help=f"Only these statuses (comma-separated): {', '.join(ALERT_STATUSES)}.")
@click.option("--level", default=None, help="Only these levels (comma-separated), e.g. high,critical.")
@click.option(
    "--rule",
    type=RULE_ID,
    default=None,
    help="Only the alerts of this rule: its id, the start of one, or its file's name.",
)
@click.option("--since", default=None, help="Only alerts with a match since: epoch ms, ISO-8601 or an age like 2h, 7d.")
@click.option("-q", "--query", "q", default=None, help="Text in the title, the rule's title or the dedup key.")
@click.option("--limit", type=int, default=None, help="How many alerts (default and maximum: the server's).")
@click.option("--cursor", default=None, help="The next page: the cursor the previous list printed.")
@click.option("--json", "as_json", is_flag=True, help="NDJSON output, one alert per line.")
@data_dir_option
@url_option
@key_option
def alerts_list(
    status: str | None,
    level: str | None,
    rule: str | None,
    since: str | None,
    q: str | None,
    limit: int | None,
    cursor: str | None,
    as_json: bool,
    data_dir: Path | None,
    url: str,
    api_key: str | None,
) -> None:
    """List alerts, newest first, with how many there are per status."""
    params = {"status": status, "level": level, "rule": rule, "since": since, "q": q, "limit": limit, "cursor": cursor}
    params = {k: str(v) for k, v in params.items() if v is not None}
    if data_dir is None:
        check_times(since, None)
        page = _remote(url, api_key, lambda client: client.alerts(params))
    else:
        from loglake.alerts.store import list_answer, parse_alert_query
        from loglake.rules.model import is_rule_id

        if rule is not None and not is_rule_id(rule):  # a whole id as it is: alerts outlive their rule
            params["rule"] = find_rule_in(rules_settings(data_dir, None), rule).id
        page = _local(data_dir, lambda conn: list_answer(conn, parse_alert_query(params, _now_ms())))
    if as_json:
        for alert in page["alerts"]:
            click.echo(json_text(alert))
    else:
        rows = [
            (a["id"], a["level"], a["status"], a["last_seen"], str(a["match_count"]), a["title"])
            for a in page["alerts"]
        ]
        print_columns(("ID", "LEVEL", "STATUS", "LAST SEEN (UTC)", "MATCHES", "TITLE"), rows)
    counts = ", ".join(f"{n} {status}" for status, n in page["counts"]["status"].items())
    click.echo(f"by status: {counts}", err=True)
    _say_more(page["next_cursor"])


@alerts.command("show", context_settings=CONTEXT)
@click.argument("alert_id", type=ALERT_ID)
@click.option("--json", "as_json", is_flag=True, help="The alert as JSON, as GET /alerts/{id} answers it.")
@data_dir_option
@url_option
@key_option
def alerts_show(alert_id: str, as_json: bool, data_dir: Path | None, url: str, api_key: str | None) -> None:
    """Show one alert with its evidence and the query that found it (ALERT_ID: its id, or a part of it
    that no other alert's id holds: the 4 digits before its last 8, usually)."""
    if data_dir is None:
        alert = _remote(url, api_key, lambda client: client.alert(alert_id))
    else:
        from loglake.alerts.store import find_alert

        alert = _local(data_dir, lambda conn: find_alert(conn, alert_id)).to_dict()
    if as_json:
        click.echo(json_text(alert, indent=2))
    else:
        _print_alert(alert)


def _change_command(name: str) -> click.Command:
    action, becomes = ACTIONS[name]

    @click.command(name, context_settings=CONTEXT)
    @click.argument("alert_id", type=ALERT_ID)
    @click.option("--note", default=None, help="Why, or what was done; kept with the alert.")
    @click.option("--json", "as_json", is_flag=True, help="The changed alert as JSON.")
    @data_dir_option
    @url_option
    @key_option
    def change(
        alert_id: str, note: str | None, as_json: bool, data_dir: Path | None, url: str, api_key: str | None
    ) -> None:
        if data_dir is None:
            alert = _remote(url, api_key, lambda client: client.change_alert(alert_id, action, note))
        else:
            alert = _local(data_dir, lambda conn: _change_locally(conn, alert_id, becomes, note)).to_dict()
        if as_json:
            click.echo(json_text(alert, indent=2))
        else:
            click.echo(f"{becomes} {printable(alert['id'])}: {printable(alert['title'])}")

    change.help = (
        f"Mark an alert {becomes} (with an optional note); refused if its status does not allow it. ALERT_ID:"
        " its id, or a part of it that no other alert's id holds (the 4 digits before its last 8, usually)."
    )
    return change


def _change_locally(conn: sqlite3.Connection, alert_id: str, status: str, note: str | None) -> Any:
    from loglake.alerts.alert_ids import find_alert_id
    from loglake.alerts.store import StatusConflict, change_status

    try:
        return change_status(conn, find_alert_id(conn, alert_id), status, getpass.getuser(), note, _now_ms())
    except (StatusConflict, ValueError) as e:
        raise click.ClickException(str(e)) from None


for _name in ACTIONS:
    alerts.add_command(_change_command(_name))


@alerts.command("deliveries", context_settings=CONTEXT)
@click.option(
    "--state", default=None, help="Only deliveries in these states (comma-separated): pending, sending, sent, dead."
)
@click.option("--destination", default=None, help="Only deliveries to this destination of alerting.yml.")
@click.option("--alert", "alert_id", default=None, help="Only the deliveries of this alert (its id, or a part of it).")
@click.option("--limit", type=int, default=None, help="How many deliveries (default and maximum: the server's).")
@click.option("--cursor", default=None, help="The next page: the cursor the previous list printed.")
@click.option("--json", "as_json", is_flag=True, help="NDJSON output, one delivery per line.")
@url_option
@key_option
def alerts_deliveries(
    state: str | None,
    destination: str | None,
    alert_id: str | None,
    limit: int | None,
    cursor: str | None,
    as_json: bool,
    url: str,
    api_key: str | None,
) -> None:
    """List a server's alert deliveries, newest first: where each alert event went, and what was
    dead-lettered and why (`loglake alerts retry` sends a dead one again)."""
    params = {"state": state, "destination": destination, "alert": alert_id, "limit": limit, "cursor": cursor}
    answer = _remote(url, api_key, lambda client: client.deliveries(params))
    for problem in [*answer["routing_problems"], answer["worker_error"]]:
        if problem:
            click.echo(printable(problem), err=True)
    if as_json:
        for delivery in answer["deliveries"]:
            click.echo(json_text(delivery))
        _say_more(answer["next_cursor"])
        return
    rows = [
        (d["id"], d["alert_id"], d["event"], d["destination"], d["state"], str(d["attempts"]), d["last_error"] or "")
        for d in answer["deliveries"]
    ]
    print_columns(("ID", "ALERT", "EVENT", "DESTINATION", "STATE", "ATTEMPTS", "LAST ERROR"), rows)
    _say_more(answer["next_cursor"])


def _say_more(cursor: str | None) -> None:
    """After a page of a list: how to ask for the next one, if there is one."""
    if cursor:
        click.echo(f"more: the next page with --cursor {cursor}", err=True)


@alerts.command("retry", context_settings=CONTEXT)
@click.argument("delivery_id")
@data_dir_option
@rules_dir_option
@url_option
@key_option
def alerts_retry(
    delivery_id: str, data_dir: Path | None, rules_dir: Path | None, url: str, api_key: str | None
) -> None:
    """Send a dead-lettered delivery again (DELIVERY_ID: its id, or its start, from `loglake alerts deliveries
    --state dead`), and the dead ones of its alert to its destination before it: it becomes pending with its
    attempts reset, and the server's delivery worker sends it once, with the same idempotency key. With
    --data-dir, the server using that folder sends it, and its destination must be in the alerting.yml of the
    server's rules folder (--rules-dir, as the server was given it)."""
    if data_dir is None:
        row = _remote(url, api_key, lambda client: client.retry_delivery(delivery_id))
        retried, destination = row["id"], row["destination"]
    else:
        local = _retry_locally(data_dir, rules_dir, delivery_id)
        retried, destination = local.id, local.destination
    # (its whole id: the start given may start another delivery's id tomorrow)
    click.echo(f"delivery {printable(retried)} to {printable(destination)} is pending again")


def _retry_locally(data_dir: Path, rules_dir: Path | None, delivery_id: str) -> Any:
    from loglake.alerts.delivery import AlertDelivery
    from loglake.alerts.outbox import NoSuchDelivery, RetryRefused
    from loglake.rules.files import ROUTING_FILE

    _require_data(data_dir)
    delivery = AlertDelivery(data_dir, rules_settings(data_dir, rules_dir).rules_path)
    try:
        return delivery.retry(delivery_id)
    except NoSuchDelivery as e:
        raise click.ClickException(f"{e}; `loglake alerts deliveries --state dead` lists the dead ones") from None
    except RetryRefused as e:
        # (read here, not the server's: a server given another rules folder routes by the alerting.yml there)
        read = f" (read {delivery.routing_file.path}; --rules-dir gives the server's)" if ROUTING_FILE in str(e) else ""
        raise click.ClickException(f"{e}{read}") from None
    finally:
        delivery.stop()


def _print_alert(alert: dict[str, Any]) -> None:
    click.echo(click.style(printable(alert["title"]), bold=True))
    change = alert["status_change"]
    status = alert["status"]
    if change is not None:
        note = f": {change['note']}" if change["note"] else ""
        status += f" by {change['by']} at {change['at']}{note}"
    fields = [
        ("id", alert["id"]),
        ("rule", f"{alert['rule_title']} ({alert['rule_id']})"),
        ("level", alert["level"]),
        ("status", status),
        ("tags", ", ".join(alert["tags"])),
        ("group", shown_json(alert["group"])),
        ("dedup key", alert["dedup_key"]),
        ("matches", str(alert["match_count"])),
        ("first seen", alert["first_seen"]),
        ("last seen", alert["last_seen"]),
        ("window", f"{alert['window']['start']} to {alert['window']['end']}"),
        ("runbook", alert["runbook"] or ""),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        click.echo(f"  {name:<{width}}  {printable(value)}")
    click.echo(f"evidence ({len(alert['evidence'])} record(s)):")
    for record in alert["evidence"]:
        click.echo("  " + shown_json(record))
    click.echo("query:")
    click.echo(printable("  " + alert["query"].replace("\n", "\n  "), multiline=True))


# What the server's answers to an unknown or ambiguous id point to, and the command that lists the same.
_LISTED_BY = {
    "GET /alerts lists them": "`loglake alerts list` lists them",
    "GET /rules lists them": "`loglake rules list` on the server's machine lists them",
    "GET /alerts/deliveries?state=dead lists the dead ones": (
        "`loglake alerts deliveries --state dead` lists the dead ones"
    ),
}


def _remote(url: str, api_key: str | None, call: Callable[[LoglakeClient], T]) -> T:
    try:
        with LoglakeClient(url, api_key) as client:
            return call(client)
    except ClientError as e:
        refused = server_refused(e)
        for route, command in _LISTED_BY.items():  # the API's pointer is not a command: tell the one that is
            refused.message = refused.message.replace(route, command)
        raise refused from None


def _local(data_dir: Path, call: Callable[[sqlite3.Connection], T]) -> T:
    from loglake.alerts import db
    from loglake.alerts.alert_ids import AmbiguousAlert, NoSuchAlert
    from loglake.alerts.store import InvalidAlertQuery

    try:
        with _alerts_db(data_dir) as conn:
            return call(conn)
    except InvalidAlertQuery as e:  # (values of the command line: a usage error, exit 2)
        raise values_refused(e.problems) from None
    except (NoSuchAlert, AmbiguousAlert) as e:
        raise click.ClickException(f"{e}; `loglake alerts list` lists them") from None
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):
            raise
        raise click.ClickException(
            f"{db.ALERTS_DB} in {data_dir} stayed locked by another process's write (the server's rules or"
            f" deliveries) for {db.BUSY_TIMEOUT_S:g} s; retry shortly, or go through the server (--url)"
        ) from None


@contextlib.contextmanager
def _alerts_db(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """The data dir's alerts.db; a folder that holds no loglake data is refused (a mistyped path)."""
    from loglake.alerts.db import open_alerts_db

    _require_data(data_dir)
    conn = open_alerts_db(data_dir)
    try:
        yield conn
    finally:
        conn.close()


def _require_data(data_dir: Path) -> None:
    """Refuse a folder that holds no loglake data (a mistyped path) rather than make a database there."""
    from loglake.config import Settings

    if not Settings(data_dir=data_dir).hot_db_path.exists():
        raise click.ClickException(f"no loglake data in {data_dir}; pass the folder `loglake serve` uses")


def _now_ms() -> int:
    return int(time.time() * 1000)


COMMANDS = [alerts]
