"""Which lake a data dir's catalog lists: the folder `lake` in the data dir, or an S3 bucket and prefix.

The catalog in hot.db names each lake file by its key in that lake, so every process that opens the data dir must
open the same lake. A `loglake flush` run without the server's LOGLAKE_LAKE_* settings opened the data dir's folder
instead of the server's bucket: it wrote parts there that no reader of the bucket found, and compaction then failed
on the bucket's files it looked for in the folder, leaving the server's queries broken. So the lake a data dir
first opened is written down (LOCATION_FILE), and a process whose settings name another is refused, saying which
settings the data dir's lake takes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from loglake.config import ConfigError, Settings, env_name
from loglake.private_files import fsync_dir, open_private

LOCATION_FILE = "lake-location.json"


def check_lake_location(settings: Settings, record: bool = True) -> None:
    """Write down the lake the settings name if the data dir has none yet (unless not to `record` it yet: a lake
    that may still refuse the data dir, claim.py); ConfigError when it has another."""
    path = Path(settings.data_dir) / LOCATION_FILE
    named = _location(settings)
    try:
        kept = json.loads(path.read_text())
    except FileNotFoundError:
        if record and Path(settings.data_dir).is_dir():  # (a command that creates no data dir writes none either)
            _write(path, named)
        return
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read ({e}): it says which lake the data dir's catalog lists") from None
    if _same_lake(kept, named):
        return
    if kept.get("bucket"):
        wanted = " ".join(f"{env_name(name)}={kept[key]}" for name, key in _SETTINGS if kept.get(key))
    else:
        wanted = f"no {env_name('lake_bucket')}"
    raise ConfigError(
        f"the data dir {settings.data_dir} holds the catalog of {_describe(kept, settings)}, but these settings name "
        f"{_describe(named, settings)}: give the settings its server has ({wanted}: variables, or a --config "
        f"file's; `serve` takes flags too), or, to move the lake, copy its files there first and then delete {path}"
    )


# The settings that say where the lake is: (setting, its key in LOCATION_FILE).
_SETTINGS = (("lake_bucket", "bucket"), ("lake_prefix", "prefix"), ("lake_endpoint", "endpoint"))


def _location(settings: Settings) -> dict[str, str]:
    if not settings.lake_bucket:
        return {"bucket": ""}
    return {
        "bucket": settings.lake_bucket,
        "prefix": settings.lake_prefix.strip("/"),
        "endpoint": settings.lake_endpoint,
    }


def _same_lake(kept: dict[str, str], named: dict[str, str]) -> bool:
    """The same bucket and prefix (an endpoint may be named otherwise for the same store: localhost, 127.0.0.1)."""
    return (kept.get("bucket", ""), kept.get("prefix", "")) == (named["bucket"], named.get("prefix", ""))


def lake_description(settings: Settings) -> str:
    """Where the settings' lake is, for people: the folder, or s3://bucket/prefix and its endpoint."""
    return _describe(_location(settings), settings)


def _describe(location: dict[str, str], settings: Settings) -> str:
    if not location.get("bucket"):
        return f"the folder {settings.lake_dir}"
    where = f"s3://{location['bucket']}/{location.get('prefix', '')}"
    return where + (f" (endpoint {location['endpoint']})" if location.get("endpoint") else "")


def _write(path: Path, location: dict[str, str]) -> None:
    """Written whole or not at all: a temporary file, fsynced, renamed into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)  # (one a killed process left)
    with open_private(temporary, "a") as file:
        file.write(json.dumps(location) + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_dir(path.parent)
