"""Settings: one declaration per option, read from CLI flags, LOGLAKE_* environment variables and an
optional TOML file (in that order of precedence: config_load.py), so `--help`, the README and the code cannot
drift; and their checks.
"""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from loglake.keys import MAX_RATE_BURST, MAX_RATE_LIMIT, MIN_RATE_LIMIT
from loglake.model import Limits
from loglake.urls import is_http_url

ENV_PREFIX = "LOGLAKE_"
_GIVEN_AS = "_given_as"  # (Settings.named's record, beside the fields)
_LIMITS = Limits()  # the record limits' defaults, defined once in model.Limits
MAX_SESSION_HOURS = 24 * 366
MOST_DEFAULT_DECODE_WORKERS = 4
# A JSON API request's body at most (POST /query, /ask, keys, alerts, backtests), gzip undone: many times what such a
# request needs, and what the event loop inflates and decodes in a millisecond or two. Such bodies took
# max_body_bytes (sized for batches of records), which held the loop, and every other request, for tens of ms.
JSON_BODY_BYTES = 1024 * 1024
JSON_BODY_SIZE = f"{JSON_BODY_BYTES // (1024 * 1024)} MiB"  # as the help texts say it
# A request counts against its key's rate limit once per this many bytes of its body started (api/ratelimit.py).
REQUEST_UNIT_BYTES = 64 * 1024
REQUEST_UNIT = f"one per {REQUEST_UNIT_BYTES // 1024} KiB of its body started"  # said in help texts and 429s
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A setting's field. `extra` metadata: `choices`; `comma_separated`; `deprecated_name`, its former name;
    `path`, for a setting whose value is a path after this prefix ("", or "file:" for a reference), which a config
    file gives from its own folder (config_load), but for the `not_paths` words ('-', 'off')."""
    return field(default=default, metadata={"help": help, **extra})


class ConfigError(ValueError):
    """A setting has a value that cannot work; the message names the setting and the fix."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _opt(Path("loglake-data"), "Folder that holds all of loglake's data.", path="")
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
    max_body_bytes: int = _opt(
        10 * 1024 * 1024,
        "Largest request body, after gzip decompression (the JSON APIs, POST /query, /ask, keys, alerts and "
        f"backtests, take at most {JSON_BODY_SIZE} of it).",
    )
    max_bulk_body_bytes: int = _opt(
        32 * 1024 * 1024,
        "Largest Elasticsearch bulk body (/_bulk), after gzip decompression: Logstash sends up to 20 MiB.",
    )
    max_records: int = _opt(_LIMITS.max_records, "Most records in one POST /logs.")
    max_message_bytes: int = _opt(_LIMITS.max_message_bytes, "Largest message, UTF-8 bytes.")
    max_attribute_keys: int = _opt(_LIMITS.max_attribute_keys, "Most top-level keys in a record's attributes.")
    max_attribute_depth: int = _opt(_LIMITS.max_attribute_depth, "Deepest nesting of attributes objects and arrays.")
    max_attribute_bytes: int = _opt(_LIMITS.max_attribute_bytes, "Largest attributes object as JSON.")
    max_future_seconds: int = _opt(_LIMITS.max_future_ms // 1000, "How far in the future a record's timestamp may be.")
    rate_limit: float = _opt(
        10_000.0,
        f"Default requests per second per API key (token bucket rate); a request counts {REQUEST_UNIT}, so a "
        "rate bounds the bytes a key sends too.",
    )
    rate_burst: int = _opt(5_000, "Default burst per API key (token bucket size, in the same requests).")
    max_store_mb: int = _opt(0, "Cap on the hot store's size in MiB (0 = only the disk limits it).")
    access_log: str = _opt(
        "-",
        "Where to write the JSON access log: '-' for stderr, a file path, or 'off'.",
        path="",
        not_paths=("-", "off"),
    )
    cors_allow_origins: str = _opt(
        "",
        "Comma-separated origins (https://ui.example.com, or *) whose web pages may call the API; empty = none.",
        comma_separated=True,
    )
    session_hours: float = _opt(12.0, "How long a web UI sign-in (POST /session) lasts, in hours.")
    max_tails_per_key: int = _opt(5, "Live tails (GET /logs/tail, loglake tail) one API key may hold open at once.")
    decode_workers: int = _opt(
        -1,
        "Processes that decode big request bodies (OTLP exports, Loki pushes) beside the server's own, on the other "
        "cores; 0 = decode in the server's process; -1 = one per core beyond the first "
        f"(one on 2 cores, at most {MOST_DEFAULT_DECODE_WORKERS}); never more than the cores.",
        deprecated_name="otlp_decode_workers",
    )
    loki_service_labels: str = _opt(
        "service_name,service,app,job",
        "Loki push: the stream labels that name a record's service, comma-separated; the first present wins.",
        comma_separated=True,
    )
    # -- the lake
    lake_bucket: str = _opt("", "S3 bucket of the lake; empty = the folder `lake` in the data dir.")
    lake_prefix: str = _opt("", "Key prefix of the lake inside the bucket, e.g. 'loglake/'.")
    lake_endpoint: str = _opt("", "S3 endpoint URL (MinIO, SeaweedFS, ...); empty = AWS.")
    lake_region: str = _opt("", "Region of the lake bucket; empty = the AWS configuration's region.")
    hot_window_seconds: int = _opt(300, "Records older than this move from the hot store to the lake.")
    # SQL reads every hot record (~5 us each): 250,000 keep that to about a second per query.
    hot_max_records: int = _opt(250_000, "Also move the oldest records once the hot store holds more than this.")
    flush_interval_seconds: float = _opt(30.0, "How often the background job moves due records (0 = never).")
    compact_target_mb: int = _opt(128, "Compaction merges a day's small lake files into files of about this size.")
    retention_days: int = _opt(365, "Lake partitions older than this many days are deleted (0 = keep forever).")
    query_timeout_seconds: float = _opt(30.0, "Longest a SQL query may run.")
    query_max_rows: int = _opt(10_000, "Most rows a SQL query returns.")
    query_concurrency: int = _opt(4, "SQL queries that run at once (more are answered 503, to retry).")
    query_memory_mb: int = _opt(1024, "Memory DuckDB may use for SQL queries, in MiB.")
    query_spill_mb: int = _opt(
        0,
        "Disk SQL queries may spill to beyond their memory (tmp/duckdb in the data dir), in MiB, shared by the "
        "queries running at once; 0 = a tenth of the data dir's free disk space when the server starts.",
    )
    query_threads: int = _opt(2, "Most threads one SQL query runs on (DuckDB's workers, shared by all queries).")
    query_max_response_mb: int = _opt(
        64, "Largest answer of a SQL query (its rows as JSON), in MiB; a larger one is refused (400)."
    )
    # -- detections
    rules_dir: str = _opt(
        "", "Folder of detection rules, one rule per YAML file; empty = `rules` in the data dir.", path=""
    )
    rules_catch_up_windows: int = _opt(
        24, "After downtime, each rule evaluates at most this many of the windows it missed (older ones are skipped)."
    )
    rules_catch_up_hours: int = _opt(24, "...and none that ended more than this many hours ago.")
    rules_wait_after_start_seconds: int = _opt(
        60,
        "After a start, the rules that ran before wait this long before they run again (catching up), so that"
        " what shippers held while the server was down arrives first.",
    )
    rules_failing_after: int = _opt(3, "A rule that fails this many runs in a row raises an alert of its own.")
    alerts_retention_days: int = _opt(
        90,
        "Resolved alerts (with their evidence, events and sent deliveries) older than this many days are deleted "
        "from alerts.db (0 = keep forever).",
    )
    public_url: str = _opt(
        "",
        "This server's address as people open it (https://loglake.example.com): alerts sent to PagerDuty, Slack, "
        "Teams and webhooks link to their page in the web UI; empty = no links.",
    )
    # -- asking in plain language (loglake.ask)
    llm_provider: str = _opt(
        "",
        "Language model behind `ask`: openai (any chat-completions server), anthropic, bedrock; empty = off.",
        choices=("", "openai", "anthropic", "bedrock"),
    )
    llm_endpoint: str = _opt(
        "",
        "Base URL of the model's API (openai: POST {endpoint}/chat/completions; anthropic: POST "
        "{endpoint}/v1/messages; bedrock: the bedrock-runtime endpoint URL); empty = the provider's own.",
    )
    llm_model: str = _opt("", "Model name or id the provider is asked for.")
    llm_api_key: str = _opt(
        "", "The model API's key BY REFERENCE: env:NAME, file:PATH or secretsmanager:ID.", path="file:"
    )
    llm_timeout_seconds: float = _opt(60.0, "Longest wait for one answer of the model.")
    llm_daily_tokens: int = _opt(1_000_000, "Tokens (in + out) the provider may use per UTC day; 0 = no budget.")
    llm_rate_per_minute: float = _opt(10.0, "Questions per minute per API key (POST /ask).")
    llm_input_price: float = _opt(0.0, "Price of a million input tokens, in USD (for the cost in /metrics).")
    llm_output_price: float = _opt(0.0, "Price of a million output tokens, in USD.")
    llm_conversation_hours: int = _opt(168, "Conversations (and cached answers' history) expire after this long.")

    # -- syslog listeners (protocols/syslog.py)
    syslog_udp: str = _opt("", "HOST:PORT (or PORT, on 127.0.0.1) to receive syslog over UDP; empty = off.")
    syslog_tcp: str = _opt("", "HOST:PORT (or PORT, on 127.0.0.1) to receive syslog over plain TCP; empty = off.")
    syslog_tls: str = _opt(
        "",
        "HOST:PORT (or PORT, on 127.0.0.1) to receive syslog over TLS (RFC 5425, whose port is 6514), beside "
        "syslog_tcp or alone; needs syslog_tls_cert and syslog_tls_key; empty = off.",
    )
    syslog_tls_cert: str = _opt("", "PEM certificate (chain) of the syslog TLS listener (syslog_tls).", path="")
    syslog_tls_key: str = _opt("", "PEM private key of syslog_tls_cert.", path="")
    syslog_allow: str = _opt(
        "",
        "Comma-separated source networks (10.0.0.0/8, 192.0.2.7) whose syslog is taken; empty = loopback only. "
        "0.0.0.0/0,::/0 takes any.",
        comma_separated=True,
    )
    syslog_rate_limit: float = _opt(
        500_000.0,
        "Syslog messages per second per listener: TCP senders are slowed down (not read), UDP datagrams "
        "beyond it are dropped and counted.",
    )
    syslog_max_connections_per_sender: int = _opt(
        64,
        "Most TCP and TLS syslog connections one sender address may hold open at once; past it a new one is closed "
        "before anything is read from it, counted and said in the log (each may hold up to ~512 KiB of a message "
        "it has not finished).",
    )
    syslog_timezone: str = _opt(
        "UTC",
        "IANA time zone (Europe/Berlin) that syslog times without a zone are read in: RFC 3164's, and RFC 3339 "
        "ones without offset. The senders' local time, as syslog-ng's time-zone().",
    )
    # -- Amplify access logs
    amplify_config: str = _opt(
        "",
        "JSON configuration of the Amplify access-log collector; set, the server collects on its schedule.",
        path="",
    )

    @property
    def limits(self) -> Limits:
        return Limits(
            max_records=self.max_records,
            max_message_bytes=self.max_message_bytes,
            max_attribute_keys=self.max_attribute_keys,
            max_attribute_depth=self.max_attribute_depth,
            max_attribute_bytes=self.max_attribute_bytes,
            max_future_ms=self.max_future_seconds * 1000,
            retention_days=self.retention_days,
        )

    @property
    def decode_processes(self) -> int:
        """decode_workers on this machine, never more than the cores (a worker beyond them only waits for
        one). -1: one per core beyond the first, at most MOST_DEFAULT_DECODE_WORKERS (each takes ~90 MiB, and a few
        feed all that one process can write). One on 2 cores: the server's own process, decoding in its threads,
        used ~1.3 of them with 4 senders and left the rest idle (the GIL, held by the decoding: machine idle
        ~30 %); a worker decodes beside it with a GIL of its own (bench/protocols_ingest.py, 1M records, 4 senders,
        three alternated pairs on 2 cores: OTLP 0.66-0.76x native's rate against 0.61-0.66x in process, gzipped
        0.71-0.80x against 0.55-0.63x, OTLP/JSON 0.58-0.65x against 0.50-0.52x, machine idle ~14 %, at 0.3-0.8 us
        more CPU a record). None on 1 core, where it would only add its start and the bodies' trips."""
        cores = os.cpu_count() or 1
        if self.decode_workers < 0:
            return max(0, min(cores - 1, MOST_DEFAULT_DECODE_WORKERS))
        return min(self.decode_workers, cores)

    @property
    def loki_service_label_names(self) -> tuple[str, ...]:
        """loki_service_labels as names, in the order they are tried."""
        return tuple(name.strip() for name in self.loki_service_labels.split(",") if name.strip())

    @property
    def hot_db_path(self) -> Path:
        return self.data_dir / "hot.db"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def rules_path(self) -> Path:
        return Path(self.rules_dir) if self.rules_dir else self.data_dir / "rules"

    @property
    def keys_db_path(self) -> Path:
        return self.data_dir / "keys.db"

    def named(self, name: str) -> str:
        """A setting as the person gave it, for an error its value meets (a port in use, a file that cannot be
        opened): `--access-log`, `LOGLAKE_ACCESS_LOG` or `access_log in /etc/loglake/loglake.toml`, as load_settings
        found it; a default's, or one given otherwise, both ways a person gives it (as_typed)."""
        return self.__dict__.get(_GIVEN_AS, {}).get(name) or as_typed(name)

    def given_as(self, given: dict[str, str]) -> Settings:
        """These settings, knowing how each setting in `given` was given (for `named`); not one of the values, so
        not compared, and a copy made with dataclasses.replace names them both ways again."""
        object.__setattr__(self, _GIVEN_AS, dict(given))
        return self

    def check(self) -> Settings:
        """Refuse combinations that are unsafe or cannot work, naming every problem at once."""
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    def problems(self) -> list[str]:
        found = []
        if not self.auth and not is_loopback(self.host):
            found.append(
                f"refusing to serve {self.host} with auth disabled: anyone on the network could read and "
                "write logs. Keep auth on, or bind to 127.0.0.1"
            )
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                found.append(f"{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        if not 0 < self.port < 65536:
            found.append(f"port must be 1-65535, got {self.port}")
        positive = (
            "rate_limit",
            "rate_burst",
            "max_tails_per_key",
            "hot_window_seconds",
            "hot_max_records",
            "compact_target_mb",
        )
        positive += ("rules_catch_up_windows", "rules_catch_up_hours", "rules_failing_after")
        # (at 0 or less, every request is refused with a limit that makes no sense: "larger than -5 bytes")
        positive += ("max_body_bytes", "max_bulk_body_bytes", "max_records", "max_message_bytes")
        positive += ("max_attribute_keys", "max_attribute_depth", "max_attribute_bytes")
        positive += ("llm_timeout_seconds", "llm_rate_per_minute", "llm_conversation_hours")
        query = ("query_timeout_seconds", "query_max_rows", "query_concurrency", "query_memory_mb", "query_threads")
        for name in (*positive, *query, "query_max_response_mb"):
            if not getattr(self, name) > 0:
                found.append(f"{name} must be positive, got {getattr(self, name)}")
        for name, most in (("rate_limit", MAX_RATE_LIMIT), ("rate_burst", MAX_RATE_BURST)):
            if getattr(self, name) > most:  # (inf too; not positive is said above)
                found.append(f"{name} must be at most {most:,}, got {getattr(self, name)}")
        if 0 < self.rate_limit < MIN_RATE_LIMIT:
            found.append(f"rate_limit must be at least {MIN_RATE_LIMIT:g}, got {self.rate_limit}")
        at_least_0 = (("query_spill_mb", "a tenth of the free disk"), ("retention_days", "keep forever"))
        at_least_0 += (("max_store_mb", "only the disk limits it"), ("max_future_seconds", "none ahead of now"))
        at_least_0 += (("rules_wait_after_start_seconds", "no wait"), ("alerts_retention_days", "keep forever"))
        for name, off in at_least_0:
            if getattr(self, name) < 0:
                found.append(f"{name} must be 0 ({off}) or positive, got {getattr(self, name)}")
        if self.decode_workers < -1:
            found.append(f"decode_workers must be -1 (by the cores), 0 (none) or positive, got {self.decode_workers}")
        if not 0 < self.session_hours <= MAX_SESSION_HOURS:
            found.append(
                f"session_hours must be more than 0 and at most {MAX_SESSION_HOURS} (a year), got {self.session_hours}"
            )
        if not self.flush_interval_seconds >= 0:
            found.append(f"flush_interval_seconds must be 0 (never) or positive, got {self.flush_interval_seconds}")
        try:
            parse_origins(self.cors_allow_origins)
        except ValueError as e:
            found.append(f"cors_allow_origins: {e}")
        if self.public_url and not is_http_url(self.public_url):
            found.append(
                f"public_url must be an http(s) URL such as https://loglake.example.com, got {self.public_url!r}"
            )
        found.extend(llm_problems(self))
        found.extend(syslog_problems(self))
        if (self.lake_prefix or self.lake_endpoint) and not self.lake_bucket:
            found.append(
                f"{self.named('lake_prefix')} and {self.named('lake_endpoint')} need {as_typed('lake_bucket')}, "
                "the S3 bucket of the lake"
            )
        return found


LLM_KEY_REFERENCES = ("env:", "file:", "secretsmanager:")


def llm_problems(settings: Settings) -> list[str]:
    """What stops the configured model from working (the key's value never appears: only its reference)."""
    found = []
    for name in ("llm_daily_tokens", "llm_input_price", "llm_output_price"):
        if getattr(settings, name) < 0:
            found.append(f"{name} must be 0 or positive, got {getattr(settings, name)}")
    key = settings.llm_api_key
    if key and not key.startswith(LLM_KEY_REFERENCES):
        found.append(
            "llm_api_key takes a reference to the key, not the key itself: env:NAME (an environment variable), "
            "file:PATH or secretsmanager:ID"
        )
    if settings.llm_provider and not settings.llm_model:
        found.append(f"{settings.named('llm_provider')} needs {as_typed('llm_model')}, the model's name")
    if settings.llm_endpoint and not is_http_url(settings.llm_endpoint):  # (else each question failed at its send)
        found.append(
            f"llm_endpoint must be an http(s) URL such as http://127.0.0.1:11434/v1, got {settings.llm_endpoint!r}"
        )
    return found


def option_fields() -> list[Any]:
    return list(fields(Settings))


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    """A setting's flag: llm_model -> --llm-model."""
    return "--" + name.replace("_", "-")


def as_typed(name: str) -> str:
    """A setting as a person sets it, for messages: `--llm-model (LOGLAKE_LLM_MODEL)`."""
    return f"{flag_name(name)} ({env_name(name)})"


def parse_origins(text: str) -> tuple[str, ...]:
    """cors_allow_origins as origins; ValueError naming one that is not scheme://host[:port] or *."""
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ValueError(f"{origin!r} is not an origin like https://logs.example.com (or *)")
    return origins


def parse_listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or PORT (on 127.0.0.1) as (host, port); ValueError saying what is wrong."""
    text = text.strip()
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT with a port from 1 to 65535 (like 127.0.0.1:5514)")
    return host, int(port)


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """syslog_allow as networks; ValueError naming one that is not an address or network."""
    networks = []
    for item in (i.strip() for i in text.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network like 10.0.0.0/8") from None
    return tuple(networks)


SYSLOG_LISTENERS = ("syslog_udp", "syslog_tcp", "syslog_tls")  # the settings that name a listener's address


def syslog_problems(settings: Settings) -> list[str]:
    found = []
    hosts = []
    for name in SYSLOG_LISTENERS:
        if getattr(settings, name):
            try:
                hosts.append(parse_listen_address(getattr(settings, name))[0])
            except ValueError as e:
                found.append(f"{name}: {e}")
    try:
        allowed = parse_networks(settings.syslog_allow)
    except ValueError as e:
        found.append(f"syslog_allow: {e}")
        allowed = ()
    exposed = [h for h in hosts if not is_loopback(h)]
    if exposed and not allowed:
        found.append(
            f"refusing to take syslog on {exposed[0]} from anywhere: syslog has no credentials. Name the "
            "senders' networks with syslog_allow (--syslog-allow 10.0.0.0/8), or bind to 127.0.0.1"
        )
    if bool(settings.syslog_tls_cert) != bool(settings.syslog_tls_key):
        cert, key = settings.named("syslog_tls_cert"), settings.named("syslog_tls_key")
        found.append(f"{cert} and {key} go together: give both files, or neither")
    elif settings.syslog_tls_cert and not settings.syslog_tls:
        # (before syslog_tls, the cert put TLS on syslog_tcp: such a setting must not quietly become plain TCP)
        found.append(
            f"{settings.named('syslog_tls_cert')} is for the TLS listener: name its address with "
            f"{as_typed('syslog_tls')} (RFC 5425's port is 6514); {as_typed('syslog_tcp')} is plain TCP, and both can "
            "listen at once"
        )
    elif settings.syslog_tls and not settings.syslog_tls_cert:
        found.append(
            f"{settings.named('syslog_tls')} needs a certificate: give {as_typed('syslog_tls_cert')} and "
            f"{as_typed('syslog_tls_key')} (PEM files)"
        )
    if not settings.syslog_rate_limit > 0:
        found.append(f"syslog_rate_limit must be positive, got {settings.syslog_rate_limit}")
    if settings.syslog_max_connections_per_sender < 1:
        found.append(
            f"syslog_max_connections_per_sender must be 1 or more, got {settings.syslog_max_connections_per_sender}"
        )
    try:
        time_zone(settings.syslog_timezone)
    except ValueError as e:
        found.append(f"{settings.named('syslog_timezone')}: {e}")
    return found


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone by name (the system's time zone database, else the tzdata package's); ValueError saying
    what is wrong."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA time zone name like UTC, Europe/Berlin or America/New_York "
            "(the names of the IANA time zone database)"
        ) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
