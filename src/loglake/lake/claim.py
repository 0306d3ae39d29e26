"""Which data dir catalogues an S3 lake: one at most.

A data dir's catalog (hot.db) lists the lake files it wrote and rewrites each table's manifest from that list alone,
and its compaction and retention act on the files it lists. Two data dirs given the same bucket and prefix (a
second machine started with the first one's settings, say) then overwrote each other's manifests: a reader through
the manifest lost the first one's 70,528 records, listed again only at its next maintenance (a new-user trial);
and each one's retention left the other's expired days behind. location.py keeps a data dir to the lake it first
opened; this keeps a lake to the data dir that first opened it.

Each data dir has an id (CATALOG_ID_FILE, made once); the lake names the id of the data dir that claimed it
(CLAIM_KEY), with where that data dir is, for the message that refuses any other. A local lake is the data dir's
own folder: no other data dir can name it.

The AWS deployment's lake has no catalog: its functions find the files by listing the bucket, and its compaction
deletes the parts it merges, so a data dir's files there would vanish from under its catalog. Its hourly
compaction claims the bucket for the deployment (claim_for_deployment), and a data dir given it is refused.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from loglake.config import ConfigError, Settings, env_name
from loglake.lake.objectstore import ObjectStore, ObjectStoreError
from loglake.private_files import fsync_dir, open_private
from loglake.times import format_datetime

CATALOG_ID_FILE = "catalog-id"
CLAIM_KEY = "_state/catalog.json"


def catalog_id(data_dir: Path) -> str | None:
    """The data dir's id, made at the first call (None when the data dir does not exist: a command that creates
    none claims nothing). Made by linking a written file into place, so that of two processes making it at once,
    both keep the one that was linked first."""
    path = data_dir / CATALOG_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if not data_dir.is_dir():
            return None
    made = data_dir / f".{CATALOG_ID_FILE}.{os.getpid()}.{threading.get_ident()}"
    made.unlink(missing_ok=True)  # (one a killed process left)
    with open_private(made, "a") as file:
        file.write(uuid.uuid4().hex + "\n")
        file.flush()
        os.fsync(file.fileno())
    try:
        os.link(made, path)
    except FileExistsError:
        pass
    else:
        fsync_dir(data_dir)
    finally:
        made.unlink()
    return path.read_text().strip()


def claim_lake(objects: ObjectStore, settings: Settings, where: str) -> bool:
    """Claim the S3 lake `where` for the settings' data dir if no data dir has yet; ConfigError when another has.
    False when the store cannot be read now: the lake is left unclaimed (serve's probe says so; the next command,
    or this one's first write, checks again)."""
    ours = catalog_id(Path(settings.data_dir))
    if ours is None:
        return True  # (nothing to claim for: a command that creates no data dir writes no lake)
    try:
        claim = _claim(objects, where)
        if claim is None:
            mine = {
                "catalog": ours,
                "data_dir": str(Path(settings.data_dir).resolve()),
                "host": socket.gethostname(),
                "since": format_datetime(int(time.time() * 1000)),
            }
            objects.put(CLAIM_KEY, json.dumps(mine).encode())
            claim = _claim(objects, where)  # (read back: of two data dirs claiming it at once, the last write won)
    except ObjectStoreError:
        return False
    if claim is None or claim.get("catalog") == ours:
        return True
    if claim.get("deployment"):
        raise ConfigError(
            f"the lake {where} is the AWS deployment's (its functions flush, compact and expire the lake by listing "
            f"the bucket {claim.get('bucket', '?')}; claimed since {claim.get('since', '?')}): its compaction would "
            "delete the files this data dir catalogues. Query it through the deployment's API or Athena, and give "
            f"this data dir a lake of its own (another --lake-bucket or --lake-prefix / {env_name('lake_prefix')})"
        )
    raise ConfigError(
        f"the lake {where} is catalogued by another loglake data dir ({claim.get('data_dir', '?')} on "
        f"{claim.get('host', '?')}, since {claim.get('since', '?')}), not {settings.data_dir}: two data dirs on one "
        "lake overwrite each other's manifests, and neither compacts nor expires the other's files. Give this data "
        f"dir a lake of its own (another --lake-prefix / {env_name('lake_prefix')}); the lake's claim is its object "
        f"{CLAIM_KEY}"
    )


def claim_for_deployment(objects: ObjectStore, bucket: str) -> dict[str, str] | None:
    """Claim the lake for the AWS deployment whose functions use it (at the bucket's root, where they list it),
    unless it has already; returns the claim this replaced when another had it (a data dir given the deployment's
    bucket, whose files the compaction will merge: the caller says so). A claim that cannot be read is replaced."""
    try:
        claim = _claim(objects, f"s3://{bucket}")
    except ConfigError:
        claim = {"claim": "not one loglake wrote"}
    if claim is not None and claim.get("deployment") == "aws":
        return None
    mine = {"deployment": "aws", "bucket": bucket, "since": format_datetime(int(time.time() * 1000))}
    objects.put(CLAIM_KEY, json.dumps(mine).encode())
    return claim


def _claim(objects: ObjectStore, where: str) -> dict[str, str] | None:
    """The lake's claim; None when it has none. A bucket that does not exist has none: some S3 servers (SeaweedFS)
    make a bucket at its first write, and a claim skipped then let a second data dir open the lake too (on one
    that does not, the claim's write fails as the lake's writes will)."""
    try:
        text = objects.get(CLAIM_KEY)
    except ObjectStoreError as e:
        if e.code in ("NoSuchKey", "NoSuchBucket", "404"):
            return None
        raise
    try:
        claim = json.loads(text)
    except ValueError:
        claim = None
    if not isinstance(claim, dict):
        raise ConfigError(
            f"the lake {where} holds a claim ({CLAIM_KEY}) that is not one loglake wrote: it says which data dir "
            "catalogues the lake; delete it if no other loglake data dir uses this lake"
        )
    return claim
