"""Settings read from CLI flags, LOGLAKE_* environment variables and an optional TOML file, in that order of
precedence (config.py declares them): each value coerced to its type, every problem named at once as the person
gave the setting, former names still taken with one warning line."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from loglake.config import ConfigError, Settings, as_typed, env_name, flag_name
from loglake.spelling import alike, typo_of

# A setting's former name (Settings field metadata `deprecated_name`), still taken as flag, variable and TOML key.
DEPRECATED_NAMES = {f.metadata["deprecated_name"]: f.name for f in fields(Settings) if "deprecated_name" in f.metadata}
log = logging.getLogger("loglake.config")  # (the name its warnings have always had)
_KNOWN = frozenset(f.name for f in fields(Settings)) | set(DEPRECATED_NAMES)
# The LOGLAKE_ variables loglake reads that are no setting: the settings' file, the client commands' server and key,
# the logging handler's service, `query --engine athena`'s, `aws synth`'s (cdk_app) and those the AWS deployment's
# stack gives its functions. warn_of_unknown_variables says nothing of them (a test keeps the list whole).
OTHER_VARIABLES = frozenset(
    {
        env_name("config"),
        env_name("url"),
        env_name("api_key"),
        "LOGLAKE_SERVICE",
        "LOGLAKE_ATHENA_DATABASE",
        "LOGLAKE_ATHENA_WORKGROUP",
        "LOGLAKE_AWS_CONFIG",
        "LOGLAKE_ALERTING_FILE",
        "LOGLAKE_ALERT_TOPICS",
        "LOGLAKE_AMPLIFY_ROLES",
        "LOGLAKE_ASK_TABLE",
        "LOGLAKE_COGNITO_CLIENT_ID",
        "LOGLAKE_COGNITO_DOMAIN",
        "LOGLAKE_COGNITO_GROUPS",
        "LOGLAKE_COGNITO_ISSUER",
        "LOGLAKE_DELIVERY_DEAD_LETTER_URL",
        "LOGLAKE_DELIVERY_LEASE_SECONDS",
        "LOGLAKE_DELIVERY_QUEUE_URL",
        "LOGLAKE_DETECTIONS_TABLE",
        "LOGLAKE_DYNAMODB_TABLE",
        "LOGLAKE_GLUE_CRAWLER",
        "LOGLAKE_RULES_BUNDLE",
        "LOGLAKE_TIME_SHARDS",
        "LOGLAKE_UI_SESSIONS_TABLE",
        "LOGLAKE_UI_URL",
        "LOGLAKE_WINDOW_LEASE_SECONDS",
    }
)


def load_settings(
    overrides: dict[str, Any] | None = None, config_file: Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Defaults < TOML file < environment < explicit overrides (CLI flags that were given)."""
    environ = dict(os.environ) if environ is None else environ
    values, given_as = _file_and_environment(config_file, environ)
    for name, value in (overrides or {}).items():
        if value is not None:
            current = _current_name(name, flag_name(name))
            values[current] = value
            given_as[current] = flag_name(name)
    typed, problems = {}, []
    for name, value in values.items():
        try:
            typed[name] = _coerce(name, value)
        except ConfigError as e:
            problems.append(str(e))
    settings = replace(Settings(), **typed).given_as(given_as)
    # every value that is not of its type, with whatever else is wrong among the rest
    problems = [_as_given(problem, given_as) for problem in problems + settings.problems()]
    if problems:
        raise ConfigError("; ".join(problems))
    return settings


def configured_data_dir(
    config_file: Path | None = None, environ: dict[str, str] | None = None
) -> tuple[Path, str | None]:
    """The data dir the environment or the config file (`config_file`, else LOGLAKE_CONFIG's) names, else the
    default: what `loglake serve` takes without --data-dir, for the commands that work on a data dir directly; with
    the setting that named it, as the person gave it (`LOGLAKE_DATA_DIR`, `data_dir in FILE`; None for the default)."""
    values, given_as = _file_and_environment(config_file, dict(os.environ) if environ is None else environ)
    if "data_dir" not in values:
        return Settings().data_dir, None
    try:
        return _coerce("data_dir", values["data_dir"]), given_as["data_dir"]
    except ConfigError as e:
        raise ConfigError(_as_given(str(e), given_as)) from None


def _file_and_environment(config_file: Path | None, environ: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings LOGLAKE_CONFIG's file (or `config_file`) and then the environment give, the later winning, and
    each one's setting as the person typed it (for the errors that name it)."""
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    named = environ.get(env_name("config"))  # empty: no file, as a shell's `LOGLAKE_CONFIG=` means
    config_file = config_file or (Path(named) if named else None)
    if config_file is not None:
        for name, value in _read_toml(config_file).items():
            current = _current_name(name, f"{name} in {config_file}")
            values[current] = _from_folder_of(config_file, current, value)
            given_as[current] = f"{name} in {config_file}"
    for name in (*DEPRECATED_NAMES, *(f.name for f in fields(Settings))):  # (the current name wins)
        if env_name(name) in environ:
            current = _current_name(name, env_name(name))
            values[current] = environ[env_name(name)]
            given_as[current] = env_name(name)
    return values, given_as


# The settings that are paths (Settings field metadata `path`: the prefix before the path), with the words they take
# that are none ('-' and 'off' of access_log).
_PATHS = {
    f.name: (f.metadata["path"], f.metadata.get("not_paths", ())) for f in fields(Settings) if "path" in f.metadata
}


def _from_folder_of(config_file: Path, name: str, value: Any) -> Any:
    """A config file's value of `name`, a relative path in it taken from the file's folder, as Prometheus takes its
    files': `data_dir = "data"` in /etc/loglake/loglake.toml is /etc/loglake/data wherever the server starts (taken
    from the folder a command ran in, a start from another one made a new, empty data dir there). Flags and variables
    stay relative to the current folder, as a shell's paths are."""
    if name not in _PATHS or not isinstance(value, str):
        return value
    prefix, not_paths = _PATHS[name]
    path = value.removeprefix(prefix)
    if value in not_paths or not value.startswith(prefix) or not path.strip() or Path(path).is_absolute():
        return value  # (an empty one is refused, or means none, as given)
    return prefix + str(config_file.parent / path)


def _as_given(problem: str, given_as: dict[str, str]) -> str:
    """A problem that starts with a setting's name (`port must be ...`, `syslog_udp: ...`) starting instead with
    the flag, environment variable or config file key the person gave it with (`--port must be ...`)."""
    name = problem.split(" ", 1)[0].removesuffix(":")
    if name not in given_as or problem.startswith(given_as[name]):  # (one that Settings.named named already)
        return problem
    return given_as[name] + problem[len(name) :]


def warn_of_unknown_variables(environ: Mapping[str, str]) -> None:
    """A line for each LOGLAKE_ variable that loglake does not read, with the one it likely meant: it is ignored,
    and a command would otherwise run without a word on the default (LOGLAKE_RETENTION=30, where the setting is
    LOGLAKE_RETENTION_DAYS, kept the lake 365 days). The `loglake` command says it once, as it starts."""
    prefix = env_name("")
    referenced = {value.removeprefix("env:") for value in environ.values() if value.startswith("env:")}  # (a secret's)
    names = [f.name for f in fields(Settings)] + [variable.removeprefix(prefix).lower() for variable in OTHER_VARIABLES]
    for variable in sorted(environ):
        name = variable.removeprefix(prefix).lower()
        if not variable.startswith(prefix) or name in _KNOWN or variable in OTHER_VARIABLES | referenced:
            continue
        meant = alike(name, names) or typo_of(name, names)
        advice = f": did you mean {env_name(meant[0])}?" if meant else " (`loglake serve --help` lists the settings)"
        log.warning("%s is not a setting, and is ignored%s", variable, advice)


def _unknown(names: set[str]) -> str:
    """The unknown setting names, each with the one it likely meant."""
    said = []
    for name in sorted(names):
        meant = alike(name, _KNOWN) or typo_of(name, _KNOWN)
        said.append(f"{name} (did you mean {meant[0]}?)" if meant else name)
    return ", ".join(said)


def _current_name(name: str, given: str) -> str:
    """A setting's name, given as `given`: its current one for a deprecated name, which one warning line says."""
    current = DEPRECATED_NAMES.get(name)
    if current is None:
        return name
    log.warning(_DEPRECATED, given, as_typed(current))
    return current


_DEPRECATED = "%s is deprecated: it is now %s"


class _SaidOnce(logging.Filter):
    """Lets each deprecation warning through once (the others pass)."""

    def __init__(self) -> None:
        super().__init__()
        self._said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _DEPRECATED:
            return True
        said = record.getMessage()
        if said in self._said:
            return False
        self._said.add(said)
        return True


@contextlib.contextmanager
def deprecations_said_once() -> Iterator[None]:
    """Within: each former name's warning said once. A command reads its settings more than once (its data dir,
    then the rest; `rules run-due` a third time for its runtime), and said the same line each time; the `loglake`
    command reads them all within."""
    said_once = _SaidOnce()
    log.addFilter(said_once)
    try:
        yield
    finally:
        log.removeFilter(said_once)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as e:  # a folder, no permission
        raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    section = data.get("loglake", data)
    unknown = set(section) - _KNOWN
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {_unknown(unknown)}; `loglake serve --help` lists them "
            "(a flag's name, with _ for -)"
        )
    return section


_TYPES = {f.name: f.type for f in fields(Settings)}
# Settings that are lists in one text (`10.0.0.0/8,192.0.2.7`): a config file may give them as a TOML array.
_COMMA_SEPARATED = frozenset(f.name for f in fields(Settings) if f.metadata.get("comma_separated"))


def _coerce(name: str, value: Any) -> Any:
    kind = _TYPES.get(name)
    if kind is None:
        raise ConfigError(f"unknown setting {name!r}")
    try:
        if kind == "Path":
            if isinstance(value, str) and not value.strip():
                raise ValueError(value)  # ("" is the folder a command runs in: a data dir made of whatever is there)
            return Path(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        # int() and float() take true as 1 and int() cuts 19206.5 to 19206: a TOML value of the wrong type
        # would start the server on a setting nobody wrote (`retention_days = true`: one day of the lake kept).
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            number = float(value) if not isinstance(value, bool) else math.nan
            if not math.isfinite(number):  # inf and nan: no timeout, rate or price reads them (int(inf) raises)
                raise ValueError(value)
            return number
        if isinstance(value, list) and name in _COMMA_SEPARATED and all(isinstance(item, str) for item in value):
            return ",".join(value)  # a TOML array, rather than its Python text (`['10.0.0.0/8'`) split at commas
        if isinstance(value, (list, dict)):
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError):
        text = "a string (or a list of strings)" if name in _COMMA_SEPARATED else "a string"
        kinds = {"int": "an integer", "float": "a finite number", "bool": "true or false", "Path": "a path"}
        described = kinds.get(kind, text if kind == "str" else kind)
        raise ConfigError(f"{name} must be {described}, got {value!r}") from None
