"""Where alerts go: `<rules-dir>/alerting.yml`, its destinations and its routes.

    destinations:
      chat: {type: slack, url: {file: /run/secrets/slack_url}}
      oncall: {type: pagerduty, routing_key: {env: PD_ROUTING_KEY}}
    routes:                       # every matching route applies; a route without `match` catches all
      - {match: {level: [critical]}, to: [oncall, chat]}
      - {match: {tags: ["attack.*"], rule: ["5f4c8e12-*"]}, to: [chat]}

A route's `match` holds when every condition it names holds, and a condition when any of its values
does (tags, rule ids and titles are globs). A rule's own `destinations` replace the routes for its
alerts. Each destination takes only the events its type wants (destinations/): a chat channel is not
told of every update of a running alert, PagerDuty and webhooks are.

The file is read again when it changes. A file with problems is reported (each with its file and
field, like rule files) and the last good version stays in use; with none yet, delivery waits for a
good one rather than losing alerts. No file at all: alerts are kept, and sent nowhere.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import threading
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from loglake.alerts.destinations import TYPES
from loglake.alerts.destinations.base import DestinationConfig
from loglake.alerts.secrets import REFERENCE_ONLY, SecretError, SecretRef, Secrets, unset_variable
from loglake.config_files import ROOT, problems_of, readable_part
from loglake.rules.files import ROUTING_FILE, UniqueKeys
from loglake.rules.model import DestinationName, Level, Problem, Rule
from loglake.times import parse_duration

MAX_FILE_BYTES = 1024 * 1024
Glob = Annotated[str, msgspec.Meta(min_length=1)]


class Match(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an alert must be for a route to apply: every condition given, any value of each."""

    level: list[Level] = msgspec.field(default_factory=list)
    tags: list[Glob] = msgspec.field(default_factory=list)  # any tag of the alert matches any glob
    rule: list[Glob] = msgspec.field(default_factory=list)  # the rule's id
    title: list[Glob] = msgspec.field(default_factory=list)  # the rule's title

    def holds(self, alert: dict[str, Any]) -> bool:
        if self.level and alert["level"] not in self.level:
            return False
        if self.tags and not any(fnmatch.fnmatchcase(t, g) for t in alert["tags"] for g in self.tags):
            return False
        if self.rule and not any(fnmatch.fnmatchcase(alert["rule_id"], g.lower()) for g in self.rule):
            return False
        return not self.title or any(fnmatch.fnmatchcase(alert["rule_title"], g) for g in self.title)


class Route(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    to: Annotated[list[DestinationName], msgspec.Meta(min_length=1)]
    match: Match | None = None  # None: every alert


class AlertingFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    destinations: dict[DestinationName, dict[str, Any]] = msgspec.field(default_factory=dict)
    routes: list[Route] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class Routing:
    """A loaded alerting.yml."""

    destinations: dict[str, DestinationConfig]
    routes: tuple[Route, ...]

    def targets(self, alert: dict[str, Any], kind: str) -> list[str]:
        """The destinations an event of this alert goes to, in the file's order, each once. A name the
        file does not define (a rule's override can name anything) is kept: delivery reports it."""
        override = alert.get("destinations")
        if override:
            names = list(override)
        else:
            names = [n for route in self.routes if route.match is None or route.match.holds(alert) for n in route.to]
        chosen = []
        for name in dict.fromkeys(names):
            destination = self.destinations.get(name)
            if destination is None or destination.takes(kind):
                chosen.append(name)
        return chosen


NO_ROUTING = Routing({}, ())


def load_routing(path: Path) -> Routing | list[Problem]:
    """The routing in `path`, or every problem of it."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return [Problem(name, "", f"cannot be read: {e.strerror}")]
    if len(data) > MAX_FILE_BYTES:
        return [Problem(name, "", f"is larger than {MAX_FILE_BYTES // 1024} KiB")]
    try:
        document = yaml.load(data, Loader=UniqueKeys) or {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return [Problem(name, where, f"not valid YAML: {e.problem or e.context}")]
    except yaml.YAMLError as e:
        return [Problem(name, "", f"not valid YAML: {e}")]
    if not isinstance(document, dict):
        return [Problem(name, "", "is not a mapping with destinations: and routes:")]
    problems = [_problem(name, text) for text in problems_of(document, AlertingFile)]
    destinations = {}
    specs = document.get("destinations")
    for dest_name, spec in (specs or {}).items() if isinstance(specs, dict) else ():
        if not isinstance(spec, dict):
            continue  # problems_of named it
        loaded = _destination(spec, f"destinations.{dest_name}")
        if isinstance(loaded, list):
            problems += [Problem(name, f, m) for f, m in loaded]
        else:
            destinations[dest_name] = loaded
    defined = list(specs) if isinstance(specs, dict) else []  # a destination with problems is defined all the same
    routes = document.get("routes")
    for i, route in enumerate(routes if isinstance(routes, list) else ()):
        for target in _route_targets(route):
            if target not in defined:
                known = ", ".join(map(str, defined)) or "none are defined"
                problems.append(Problem(name, f"routes[{i}].to", f"{target!r} is not a destination ({known})"))
    if problems:
        return problems
    return Routing(destinations, tuple(msgspec.convert(document, AlertingFile).routes))


def folder_routing(rules_dir: Path) -> Routing | list[Problem] | None:
    """The folder's alerting.yml loaded, or its problems; None when there is none."""
    path = Path(rules_dir) / ROUTING_FILE
    return load_routing(path) if path.is_file() else None


def routing_problems(rules_dir: Path) -> list[Problem]:
    """The problems of the folder's alerting.yml (none when it loads or there is none): reported with the
    rule files' (`rules validate`, the server's metrics, health and log), since alerts go nowhere new
    while it has them."""
    return problems_in(folder_routing(rules_dir))


def problems_in(routing: Routing | list[Problem] | None) -> list[Problem]:
    """A folder_routing's problems (none when it loaded or there is no file)."""
    return routing if isinstance(routing, list) else []


def while_broken(loaded_before: bool | None) -> str:
    """What becomes of alerts while alerting.yml has problems: the last version that loaded routes them, or they
    wait when none did (loaded_before None: not known here, both said)."""
    if loaded_before is None:
        return (
            f"{ROUTING_FILE} has problems: alerts are delivered as the last version of it that loaded says (if none"
            " did, they wait undelivered), until it is fixed"
        )
    if loaded_before:
        return (
            f"{ROUTING_FILE} has problems: alerts are delivered as the last version of it that loaded says, until it"
            " is fixed"
        )
    return f"{ROUTING_FILE} has problems and no version of it has loaded: alerts wait undelivered until it is fixed"


def is_routing_problem(problem: Problem) -> bool:
    return Path(problem.file).name == ROUTING_FILE


def with_destination_warnings(rules: list[Rule], routing: Routing | list[Problem] | None) -> list[Rule]:
    """The rules, each naming a destination that the folder's alerting.yml (folder_routing) does not define warned
    of it: it loads and runs, but its alerts' deliveries there are dead-lettered (a typo in the name, say).
    Nothing is said while alerting.yml is missing or has problems (those are said on their own)."""
    if not isinstance(routing, Routing):
        return rules
    warned = []
    for rule in rules:
        undefined = [name for name in rule.options.destinations if name not in routing.destinations]
        if undefined:
            names = ", ".join(repr(name) for name in undefined)
            warning = Problem(
                str(rule.path),
                "loglake.destinations",
                f"{names} not defined in {ROUTING_FILE}: this rule's alerts would be dead-lettered there; define"
                f" it there, or correct the name (defined: {', '.join(routing.destinations) or 'none'})",
            )
            rule = dataclasses.replace(rule, warnings=(*rule.warnings, warning))
        warned.append(rule)
    return warned


def _route_targets(route: Any) -> list[str]:
    """The destinations a route names, or none when it does not read (problems_of named why)."""
    try:
        return msgspec.convert({"to": route.get("to")}, Route).to  # whatever else of the route has problems
    except (msgspec.ValidationError, AttributeError):
        return []


def _secret_references(routing: Routing) -> Iterator[tuple[str, SecretRef]]:
    """Each destination's secret references, with where each is in the file (`destinations.NAME.FIELD`)."""
    for name, destination in routing.destinations.items():
        for f in msgspec.structs.fields(destination):
            if isinstance(value := getattr(destination, f.name), SecretRef):
                yield f"destinations.{name}.{f.encode_name}", value


def unset_variables(routing: Routing, file: Path) -> list[Problem]:
    """The destinations' secrets in environment variables that are not set now. Not a reason to refuse the
    file (a variable may be set before an alert needs it), but each delivery that needs one waits, so say so."""
    return [
        Problem(str(file), where, unset_variable(ref))
        for where, ref in _secret_references(routing)
        if ref.env is not None and not os.environ.get(ref.env)
    ]


def unreadable_files(routing: Routing, file: Path) -> list[Problem]:
    """The destinations' secrets in files that cannot be read now (missing, empty, too large), as unset_variables
    says the variables: not a reason to refuse the file, but each delivery that needs one waits."""
    problems = []
    for where, ref in _secret_references(routing):
        if ref.file is not None:
            try:
                Secrets().value(ref)
            except SecretError as e:
                problems.append(Problem(str(file), where, str(e)))
    return problems


def _destination(spec: dict[str, Any], at: str) -> DestinationConfig | list[tuple[str, str]]:
    kind = TYPES.get(spec.get("type"))  # type: ignore[arg-type]
    if kind is None:
        given = spec.get("type")
        said = "missing" if given is None else f"{given!r} is not a destination type"
        return [(f"{at}.type", f"{said} (one of: {', '.join(TYPES)})")]
    fields = {k: v for k, v in spec.items() if k != "type"}
    problems = [
        (f"{at}.{f}", f"{REFERENCE_ONLY}, never written in the file")
        for f in _secret_fields(kind)
        if isinstance(fields.get(f), str)
    ]
    # Check the rest as if those were references, so that each is reported once and never echoed.
    fields |= {f.rpartition(".")[2]: {"env": "SECRET"} for f, _ in problems}
    shape = [_split(text) for text in problems_of(fields, kind, at)]
    problems += shape
    destination = readable_part(fields, kind, [f for f, _ in shape], at)  # its other checks, whatever its shape
    if destination is not None:
        problems += [(f"{at}.{f}", m) for f, m in destination.problems()]
        if parse_duration(destination.timeout) == 0:  # every attempt would time out, saying no more than that
            problems.append((f"{at}.timeout", "must be longer than 0"))
    return problems if problems or destination is None else destination


def _secret_fields(kind: type[DestinationConfig]) -> list[str]:
    """The settings that only a reference may give (a plain string is refused)."""
    found = []
    for f in msgspec.structs.fields(kind):
        options = typing.get_args(f.type) or (f.type,)
        if SecretRef in options and str not in options:
            found.append(f.encode_name)
    return found


def _split(text: str) -> tuple[str, str]:
    where, _, message = text.partition(": ")
    return where, message


def _problem(file: str, text: str) -> Problem:
    where, message = _split(text)
    return Problem(file, "" if where == ROOT else where, message)


# An empty alerting.yml changed this recently is taken for one being written (an editor or `cat >` truncates the file,
# then writes it): read then, it routed nothing, and every delivery waiting for a destination was dead-lettered. So is
# one gone for less than this since it was last seen (vim and Emacs rename the file to its backup, then write it anew).
EMPTY_SETTLES_NS = 2_000_000_000


class RoutingFile:
    """alerting.yml as it is now: read again whenever its size, time or inode changes (an empty or a missing one once
    it has stayed so for EMPTY_SETTLES_NS)."""

    def __init__(self, rules_dir: Path) -> None:
        self.path = Path(rules_dir) / ROUTING_FILE
        self._stamp: tuple[int, int, int] | None = None
        self._good: Routing | None = None
        self._missing_since: int | None = None  # (time.monotonic_ns) when a file read before was first found gone
        self.problems: list[Problem] = []
        self._lock = threading.Lock()  # the delivery worker and API requests both ask

    def said(self) -> list[str]:
        """What to tell of the file now: while it has problems, what becomes of alerts and its problems; the
        unset secrets of the version in use (named as such while a newer one has problems)."""
        routing = self.current()
        with self._lock:
            problems = list(self.problems)
        unset = self.unset(routing)
        if not problems:
            return [str(problem) for problem in unset]
        in_use = [str(dataclasses.replace(problem, file=f"{problem.file} (the version in use)")) for problem in unset]
        return [while_broken(routing is not None and routing is not NO_ROUTING), *map(str, problems), *in_use]

    def unset(self, routing: Routing | None = None) -> list[Problem]:
        """The secrets in environment variables that the version in use (`routing`, else the current one) needs
        and that are not set."""
        routing = routing or self.current()
        return [] if routing is None else unset_variables(routing, self.path)

    def current(self) -> Routing | None:
        """The routing to use, or None while the file has problems and no good version was read yet."""
        with self._lock:
            return self._current()

    def _current(self) -> Routing | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            now = time.monotonic_ns()
            if self._stamp is not None:  # (a file was read: it may be between its backup and its new version)
                if self._missing_since is None:
                    self._missing_since = now
                if now - self._missing_since < EMPTY_SETTLES_NS:
                    return self._good
            self._stamp, self._good, self.problems, self._missing_since = None, NO_ROUTING, [], None
            return NO_ROUTING
        self._missing_since = None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp != self._stamp and not (self._good is not None and _being_written(stat)):
            self._stamp = stamp
            loaded = load_routing(self.path)
            if isinstance(loaded, Routing):
                self._good, self.problems = loaded, []
            else:
                self.problems = loaded
        return self._good


def _being_written(stat: os.stat_result) -> bool:
    """Whether alerting.yml is empty and changed within EMPTY_SETTLES_NS (see there)."""
    return stat.st_size == 0 and 0 <= time.time_ns() - stat.st_mtime_ns < EMPTY_SETTLES_NS  # (a future time: skew)
