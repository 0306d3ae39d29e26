"""Settings: one declaration per option, read from CLI flags, LOGLAKE_* environment variables and an
optional TOML file (in that order of precedence), so `--help`, the README and the code cannot drift.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from loglake.model import Limits

ENV_PREFIX = "LOGLAKE_"


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


class ConfigError(ValueError):
    """A setting has a value that cannot work; the message names the setting and the fix."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _opt(Path("loglake-data"), "Folder that holds all of loglake's data.")
    host: str = _opt("127.0.0.1", "Address to listen on (auth must stay on for non-loopback addresses).")
    port: int = _opt(8080, "TCP port to listen on.")
    auth: bool = _opt(True, "Require API keys (or SigV4). Only a loopback server may turn this off.")
    region: str = _opt("us-east-1", "Region in the SigV4 credential scope (service execute-api).")
    durability: str = _opt(
        "full",
        "When a write is acknowledged: 'full' = fsynced to disk; 'process' = handed to the OS "
        "(survives a crash of loglake, not of the machine).",
        choices=("full", "process"),
    )
    max_body_bytes: int = _opt(10 * 1024 * 1024, "Largest request body, after gzip decompression.")
    max_records: int = _opt(10_000, "Most records in one POST /logs.")
    max_message_bytes: int = _opt(256 * 1024, "Largest message, UTF-8 bytes.")
    max_attribute_keys: int = _opt(128, "Most top-level keys in a record's attributes.")
    max_attribute_depth: int = _opt(5, "Deepest nesting of attributes objects and arrays.")
    max_attribute_bytes: int = _opt(64 * 1024, "Largest attributes object as JSON.")
    max_future_seconds: int = _opt(86_400, "How far in the future a record's timestamp may be.")
    rate_limit: float = _opt(10_000.0, "Default requests per second per API key (token bucket rate).")
    rate_burst: int = _opt(5_000, "Default burst per API key (token bucket size).")
    max_store_mb: int = _opt(0, "Cap on the hot store's size in MiB (0 = only the disk limits it).")
    access_log: str = _opt("-", "Where to write the JSON access log: '-' for stderr, a file path, or 'off'.")

    @property
    def limits(self) -> Limits:
        return Limits(
            max_records=self.max_records,
            max_message_bytes=self.max_message_bytes,
            max_attribute_keys=self.max_attribute_keys,
            max_attribute_depth=self.max_attribute_depth,
            max_attribute_bytes=self.max_attribute_bytes,
            max_future_ms=self.max_future_seconds * 1000,
        )

    @property
    def hot_db_path(self) -> Path:
        return self.data_dir / "hot.db"

    @property
    def keys_db_path(self) -> Path:
        return self.data_dir / "keys.db"

    def check(self) -> Settings:
        """Refuse combinations that are unsafe or cannot work."""
        if not self.auth and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve {self.host} with auth disabled: anyone on the network could read and "
                "write logs. Keep auth on, or bind to 127.0.0.1."
            )
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be 1-65535, got {self.port}")
        if self.rate_limit <= 0 or self.rate_burst <= 0:
            raise ConfigError("rate_limit and rate_burst must be positive")
        return self


def option_fields() -> list[Any]:
    return list(fields(Settings))


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def load_settings(
    overrides: dict[str, Any] | None = None, config_file: Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Defaults < TOML file < environment < explicit overrides (CLI flags that were given)."""
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or (Path(environ[env_name("config")]) if env_name("config") in environ else None)
    if config_file is not None:
        values.update(_read_toml(config_file))
    for f in fields(Settings):
        if env_name(f.name) in environ:
            values[f.name] = environ[env_name(f.name)]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    typed = {name: _coerce(name, value) for name, value in values.items()}
    return replace(Settings(), **typed).check()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    section = data.get("loglake", data)
    known = {f.name for f in fields(Settings)}
    unknown = set(section) - known
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}")
    return section


_TYPES = {f.name: f.type for f in fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    kind = _TYPES.get(name)
    if kind is None:
        raise ConfigError(f"unknown setting {name!r}")
    try:
        if kind == "Path":
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
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        described = {"int": "an integer", "float": "a number", "bool": "true or false"}.get(kind, kind)
        raise ConfigError(f"setting {name} ({env_name(name)}) must be {described}, got {value!r}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
