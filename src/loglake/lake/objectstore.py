"""Object storage for the lake: a local folder (the default) or any S3-compatible endpoint.

Both give the guarantee the lake's exactly-once flush is built on: an object is either absent or
complete, never partial. Locally that is write-to-temp, fsync, rename; on S3 a PUT is atomic.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loglake.private_files import FILE_MODE, fsync_dir, fsync_together, open_private, private_dir

TEMP_SUFFIX = ".tmp"
PROBE_KEY = "_state/probe"  # written and deleted by probe_write
UNFINISHED_AFTER_SECONDS = 600.0  # a temp file unchanged this long is a crashed write's, see remove_unfinished


class ObjectStoreError(Exception):
    """The store refused or failed an operation; the message names the key and the cause, `code` the store's
    error code when it gave one (S3's `SignatureDoesNotMatch`, `NoSuchBucket`, ...; `NoCredentialsError` when
    none were found), else None (the store could not be reached)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


# ObjectStoreError.code of a get whose object does not exist: S3's, and a local lake's too.
NO_SUCH_KEY = "NoSuchKey"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated and never climb out of the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ObjectStoreError(f"invalid object key {key!r}")
    return key


class ObjectStore(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store data under key atomically (readers see the old object, or none, or all of the new)."""

    def probe_write(self) -> None:
        """Write an empty object and delete it: ObjectStoreError (or OSError) while the store refuses writes."""
        self.put(PROBE_KEY, b"")
        self.delete(PROBE_KEY)

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Like put, from a local file (large Parquet files are not held in memory)."""

    def publish_file(self, key: str, path: Path) -> None:
        """put_file for a file its caller is done with, which may be moved rather than copied (it may be
        gone afterwards). For a caller that journals the key first (flush.publish): the object may show
        under its key before it is complete on disk, and is complete on disk when this returns."""
        self.put_file(key, path)

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectStoreError if there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with prefix, in key order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; removing one that is gone is not an error (deletes are retried)."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where a query engine finds the object (a path, or s3://bucket/key)."""

    def get_file(self, key: str, path: Path) -> None:
        """Download an object to a local file."""
        path.write_bytes(self.get(key))

    def exists(self, key: str) -> bool:
        return any(info.key == key for info in self.list(key))


class LocalObjectStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = private_dir(Path(root))

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        self._publish(key, lambda f: f.write(data))

    def put_file(self, key: str, path: Path) -> None:
        def copy(out: Any) -> None:
            with open(path, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)

        self._publish(key, copy)

    def publish_file(self, key: str, path: Path) -> None:
        """The file itself becomes the object: made private, renamed into place, then it and its folder
        synced together (fsync_together: one flush of the disk, not one for the file and then one for the
        rename). Copying it was ~15 % of a bulk batch's write and a second write of every byte compaction
        merges. A file on another file system than the lake (a lake folder on its own disk) is copied as by
        put_file. Its name can show before its bytes are on disk: a crash then may leave it incomplete, and
        the round that published it (flush.publish journals its keys first, and commits it to the catalog
        only once this returns) is undone at recovery, which deletes it."""
        target = self._path(key)
        os.chmod(path, FILE_MODE)
        for attempt in range(3):
            private_dir(target.parent)
            try:
                os.replace(path, target)
                break
            except FileNotFoundError:  # a delete removed the folder as it emptied, just now: make it again
                if attempt == 2:
                    raise
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                self.put_file(key, path)
                return
        fsync_together([target, target.parent])

    def _publish(self, key: str, write: Any) -> None:
        target = self._path(key)
        for attempt in range(3):
            private_dir(target.parent)
            try:
                fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
                break
            except FileNotFoundError:  # a delete removed the folder as it emptied, just now: make it again
                if attempt == 2:
                    raise
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        fsync_dir(target.parent)  # the rename itself survives a crash only once its folder is synced

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectStoreError(f"no object {key!r} in {self.root}", NO_SUCH_KEY) from None

    def get_file(self, key: str, path: Path) -> None:
        """A link to the object where the file system allows one (objects never change once published): a copy
        took a merge's inputs' room again on the disk the lake fills, and was not 0600 (a disk-full trial)."""
        source = self._path(key)
        try:
            os.link(source, path)
        except FileNotFoundError:
            raise ObjectStoreError(f"no object {key!r} in {self.root}") from None
        except OSError:  # another file system (EXDEV), or one without links: a copy of the owner's alone
            with open(source, "rb") as original, open_private(path) as copy:
                shutil.copyfileobj(original, copy)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found = []
        for dirpath, _, filenames in os.walk(self.root):
            for name in filenames:
                if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    continue  # an unfinished write, not an object
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(ObjectInfo(key, path.stat().st_size))
        return iter(sorted(found, key=lambda info: info.key))

    def delete(self, key: str) -> None:
        """Also removes the folders the object leaves empty: an outside engine listing the lake would
        take an empty `date=` folder for a partition."""
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsync_dir(path.parent)
            self._remove_if_empty(path.parent)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def remove_unfinished(self, now: float | None = None) -> int:
        """Delete temp files left by a crash mid-write, and folders left empty; returns how many files.
        A temp file written to in the last UNFINISHED_AFTER_SECONDS is a write under way (bulk ingest and
        Amplify collections write while maintenance runs), not a leftover: it stays."""
        written_before = (time.time() if now is None else now) - UNFINISHED_AFTER_SECONDS
        removed = 0
        for path in self.root.rglob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < written_before:
                    path.unlink()
                    removed += 1
        for folder, subfolders, files in os.walk(self.root, topdown=False):
            if not subfolders and not files:
                self._remove_if_empty(Path(folder))
        return removed

    def _remove_if_empty(self, folder: Path) -> None:
        """Remove `folder` and then each parent up to the root, while they are empty."""
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone)
                return
            folder = folder.parent


# How long an S3 call waits to connect, and for an answer once connected, before it is tried again (S3_ATTEMPTS in
# all). botocore's defaults (60 s each, 5 attempts) held a POST /logs for 6 minutes against a store that had hung,
# while the server said it was well; now such a write is refused (503) within about a minute and a half.
S3_CONNECT_TIMEOUT_S = 5.0
S3_READ_TIMEOUT_S = 30.0
S3_ATTEMPTS = 3


def s3_client_config() -> Any:
    """The botocore Config of the lake's S3 client: the timeouts and attempts above."""
    from botocore.config import Config

    return Config(
        connect_timeout=S3_CONNECT_TIMEOUT_S,
        read_timeout=S3_READ_TIMEOUT_S,
        retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"},
    )


def s3_objects(bucket: str, prefix: str, endpoint: str | None, region: str | None) -> S3ObjectStore:
    """An S3 lake through the standard credential chain (the environment, a profile, an instance role)."""
    import boto3

    session = boto3.session.Session(region_name=region or None)
    client = session.client("s3", endpoint_url=endpoint or None, config=s3_client_config())
    return S3ObjectStore(client, bucket, prefix, credentials=session.get_credentials())


class S3ObjectStore(ObjectStore):
    """Any S3-compatible endpoint. Pass a boto3 S3 client (made with the standard credential chain,
    endpoint and region), so tests and callers choose the endpoint."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", credentials: Any = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        # botocore Credentials for readers that do not go through boto3 (pyarrow, for SQL); None =
        # their own standard credential chain.
        self.credentials = credentials
        self._claim: Callable[[], bool] | None = None
        self._claiming = threading.Lock()
        self._claimer: int | None = None  # the thread whose write is claiming the lake now

    def claim_before_writing(self, claim: Callable[[], bool]) -> None:
        """Have the first write call `claim` first (and every write until it answers True): a lake that could not be
        claimed when it was opened (unreachable, claim.py) may have been claimed by another data dir meanwhile,
        whose lake this one's writes would then join. `claim` raises ObjectStoreError to refuse the write."""
        self._claim = claim

    def _claimed(self) -> None:
        if self._claim is None or self._claimer == threading.get_ident():  # (the claim's own write passes)
            return
        # The other writes wait for the claim under way: one that went ahead meanwhile (a bulk batch's manifest
        # beside a maintenance turn's probe) wrote into a lake the claim then found to be another data dir's.
        with self._claiming:
            claim = self._claim
            if claim is None:
                return
            self._claimer = threading.get_ident()
            try:
                if claim():
                    self._claim = None  # (else still unreachable: this write fails, the next one claims again)
            finally:
                self._claimer = None

    def arrow_filesystem(self) -> Any:
        """A pyarrow S3 filesystem for the same endpoint, region and credentials as the client."""
        from pyarrow import fs

        options: dict[str, Any] = {
            "region": self.client.meta.region_name,
            "connect_timeout": S3_CONNECT_TIMEOUT_S,
            "request_timeout": S3_READ_TIMEOUT_S,
            "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
        }
        endpoint = urlsplit(self.client.meta.endpoint_url)
        if endpoint.hostname and not endpoint.hostname.endswith(".amazonaws.com"):
            options |= {"endpoint_override": endpoint.netloc, "scheme": endpoint.scheme}
        if self.credentials is not None:
            frozen = self.credentials.get_frozen_credentials()
            options |= {"access_key": frozen.access_key, "secret_key": frozen.secret_key, "session_token": frozen.token}
        return fs.S3FileSystem(**options)

    def arrow_path(self, key: str) -> str:
        """`bucket/prefix/key`, as pyarrow's S3 filesystem names objects."""
        return f"{self.bucket}/{self._key(key)}"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> None:
        self._claimed()
        self._call("put", key, self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        self._claimed()
        self._call("put", key, self.client.upload_file, str(path), self.bucket, self._key(key))

    def get(self, key: str) -> bytes:
        response = self._call("get", key, self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        return response["Body"].read()

    def get_file(self, key: str, path: Path) -> None:
        self._call("get", key, self.client.download_file, self.bucket, self._key(key), str(path))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    if _addressable(key):
                        yield ObjectInfo(key, item["Size"])
        except self._errors() as e:
            raise ObjectStoreError(f"cannot list s3://{self.bucket}/{self.prefix}{prefix}: {e}", _code(e)) from None

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    # S3's conditional writes: of two clients writing one key at once on the same condition, one wins.

    def put_if(self, key: str, data: bytes, etag: str | None) -> str | None:
        """Write the object if there is none (`etag` None) or if it is still the version of that ETag: its new ETag,
        or None when the condition failed."""
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            return self._call(
                "put", key, self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data, **condition
            )["ETag"]
        except ObjectStoreError as e:
            if e.code in _CONDITION_FAILED:
                return None
            raise

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object and its ETag (what put_if and delete_if take), None when there is none."""
        try:
            response = self._call("get", key, self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        except ObjectStoreError as e:
            if e.code == NO_SUCH_KEY:
                return None
            raise
        return response["Body"].read(), response["ETag"]

    def delete_if(self, key: str, etag: str) -> bool:
        """Delete the object if it is still the version of that ETag: whether it was."""
        try:
            self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._key(key), IfMatch=etag)
        except ObjectStoreError as e:
            if e.code in _CONDITION_FAILED:
                return False
            raise
        return True

    def _call(self, action: str, key: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except self._errors() as e:
            raise ObjectStoreError(f"cannot {action} s3://{self.bucket}/{self.prefix}{key}: {e}", _code(e)) from None

    def _errors(self) -> tuple[type[BaseException], ...]:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError, S3UploadFailedError)


# What S3 answers when a conditional write's condition fails: 412, 409 when another conditional write to the key
# was under way, 404 when a version to match is gone.
_CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict", NO_SUCH_KEY, "404"})


def _addressable(key: str) -> bool:
    """Whether a listed key is one the store reads and deletes (check_key): not an S3 console's folder object
    (`type=app_logs/date=2020-01-01/`), which no lake wrote, and which failed every retention run at its day."""
    try:
        check_key(key)
    except ObjectStoreError:
        return False
    return True


def _code(error: BaseException) -> str | None:
    """The S3 error code of a botocore error (ObjectStoreError.code)."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code")
    if isinstance(error, NoCredentialsError):
        return "NoCredentialsError"
    cause = getattr(error, "__context__", None)  # (boto3's S3UploadFailedError wraps the ClientError)
    return _code(cause) if isinstance(cause, ClientError) else None
