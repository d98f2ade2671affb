"""Lake storage: a local directory or an S3 prefix behind one narrow interface.

Keys are ``/``-separated paths relative to the lake root (``raw/klines/...``). Writes
are atomic: locally a temporary dot-file in the same directory is fsynced and renamed
over the target (readers never see half a file; a crash leaves only a dot-file that
every listing and reader ignores); on S3 a single PUT is atomic by construction.
``write_bytes(..., if_absent=True)`` creates a key only if it does not exist (hard link
locally, ``If-None-Match: *`` on S3), which makes immutable raw files safe under
concurrent runs.

``write_if_version(key, data, version)`` is a compare-and-swap: it replaces the key only if it
still holds the version this writer read (``None``: only if it is still absent), else raises
``WriteConflict`` and writes nothing. On S3 that is a conditional PutObject (``If-Match: <ETag>``
or ``If-None-Match: *``; "How to prevent object overwrites with conditional writes", Amazon S3
User Guide, docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). Locally the
version is the sha256 of the bytes, re-checked and the file renamed into place inside a short
critical section under an OS file lock (``fcntl.flock`` on a dot-named ``.<name>.cas`` next to the
key, which listings ignore), so the check and the replace are one step for every process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
import uuid
from typing import Any, ContextManager, Iterator, List, Optional, Protocol, Tuple

from binance_lake.crash import crash_point
from binance_lake.errors import BadInputError, LakeError, StorageError, WriteConflict

TMP_MARK = ".tmp-"
CAS_MARK = ".cas"  # local compare-and-swap lock files: .<name>.cas, dot-named so listings skip them


# What identifies the version of a key that was read, for a later conditional write or delete:
# the S3 ETag, or (local) the sha256 of the bytes. Equal bytes are the same version on purpose: a
# merge over identical content is still a merge over what is stored.
Version = Any
# S3 answers a lost conditional write with 412 PreconditionFailed (the ETag no longer matches, or
# the key now exists), 409 ConditionalRequestConflict (a concurrent conditional write or delete of
# the key was in progress: "On a 409 failure you should fetch the object's ETag and retry", S3 API
# Reference, PutObject, If-Match / If-None-Match), or 404 NoSuchKey for If-Match on a key deleted
# meanwhile. All of them mean "lost the race", never a storage failure.
LOST_RACE = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404")


class Lake(Protocol):
    """What every storage offers; locking and durability need only this (no isinstance)."""

    uri: str

    def read_bytes(self, key: str) -> bytes: ...
    def read_with_version(self, key: str) -> Tuple[bytes, Version]: ...
    def version_of(self, key: str) -> Optional[Version]: ...
    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool: ...
    def write_if_version(self, key: str, data: bytes, expected: Optional[Version]) -> Version: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_if_match(self, key: str, version: Version) -> bool: ...
    def list_keys(self, prefix: str) -> List[str]: ...
    def list_children(self, prefix: str) -> List[str]: ...
    def local_path(self, key: str) -> Optional[str]: ...
    def sync(self) -> None: ...
    def deferred_sync(self) -> ContextManager[None]: ...


def _visible(name: str) -> bool:
    # Dot-files are in-flight temporaries or foreign metadata; readers never see them.
    return not name.startswith(".") and TMP_MARK not in name


class LocalLake:
    """A lake in a local directory (``./lake`` by default).

    Every write is durable when it returns (file and directory fsynced), unless
    ``defer_sync`` is set: then a thread's writes are fsynced together at its next
    ``sync()``. The trade-off: a process kill loses nothing either way (the page cache
    survives it), but after a power loss a write not yet synced may be missing or, if it
    replaced a file, leave an empty one. Only callers that write a durable commit record
    after ``sync()`` and redo unrecorded work on rerun may set it (the archive backfill:
    its sidecar per archive file; an empty curated file reads as unreadable and is
    rebuilt from raw).
    """

    def __init__(self, root: str, defer_sync: bool = False):
        self.root = os.path.abspath(root)
        self.uri = root
        self.defer_sync = defer_sync
        self._unsynced = threading.local()  # per thread: one thread's sync() never waits on another's

    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid lake key {key!r}")
        return os.path.join(self.root, *key.split("/"))

    def local_path(self, key: str) -> Optional[str]:
        return self._path(key)

    def read_bytes(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def _temp_copy(self, key: str, path: str, data: bytes) -> str:
        """``data`` in a new dot-named temporary file next to ``path`` (fsynced unless deferred)."""
        directory, name = os.path.split(path)
        tmp = os.path.join(directory, f".{name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.makedirs(directory, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if not self.defer_sync:
                os.fsync(fh.fileno())
        crash_point(f"tmp:{key.split('/', 1)[0]}")  # test hook: die with only the temp file written
        return tmp

    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        path = self._path(key)
        directory, name = os.path.split(path)
        tmp = os.path.join(directory, f".{name}{TMP_MARK}-none")  # replaced below; for the cleanup on error
        try:
            tmp = self._temp_copy(key, path, data)
            if if_absent:
                try:
                    os.link(tmp, path)  # atomic create-if-absent
                except FileExistsError:
                    return False
                finally:
                    os.unlink(tmp)
            else:
                os.replace(tmp, path)
            if self.defer_sync:
                self._pending().append(path)
            else:
                _fsync_dir(directory)
            return True
        except OSError as exc:
            # Best effort: on a read-only disk the cleanup fails too (EROFS), and that must not
            # replace the error that says what happened (a dot-named temp file is never listed).
            with contextlib.suppress(OSError):
                _unlink_quietly(tmp)
            raise StorageError(_os_error_message(self.root, key, exc)) from None

    def write_if_version(self, key: str, data: bytes, expected: Optional[Version]) -> Version:
        """Replace ``key`` only if it still holds ``expected`` (``None``: only if absent).

        The version check and the rename happen under an exclusive ``flock`` of ``.<name>.cas``,
        which every conditional write and delete of the key takes: no other process can replace
        the file between the check and the rename. The data is written to its temporary file
        before the lock is taken, so the critical section is a hash and a rename.
        """
        path = self._path(key)
        directory, name = os.path.split(path)
        tmp = os.path.join(directory, f".{name}{TMP_MARK}-none")
        try:
            tmp = self._temp_copy(key, path, data)
            with _flocked(os.path.join(directory, f".{name}{CAS_MARK}")):
                if _file_version(path) != expected:
                    raise WriteConflict(f"{key} changed since this run read it (another writer replaced or "
                                        "created it); nothing was overwritten")
                os.replace(tmp, path)
            if self.defer_sync:
                self._pending().append(path)
            else:
                _fsync_dir(directory)
            return _digest(data)
        except OSError as exc:
            raise StorageError(_os_error_message(self.root, key, exc)) from None
        finally:
            with contextlib.suppress(OSError):  # gone already after a successful rename; best effort else
                _unlink_quietly(tmp)

    def version_of(self, key: str) -> Optional[Version]:
        """The version :meth:`write_if_version` compares with; None if the key is absent."""
        return _file_version(self._path(key))

    def _pending(self) -> List[str]:
        if not hasattr(self._unsynced, "paths"):
            self._unsynced.paths = []
        return self._unsynced.paths

    def sync(self) -> None:
        """Make this thread's deferred writes durable: each file, then each directory once."""
        paths, self._unsynced.paths = self._pending(), []
        for path in paths:
            _fsync_path(path)
        for directory in sorted({os.path.dirname(p) for p in paths}):
            _fsync_dir(directory)

    def delete(self, key: str) -> None:
        _unlink_quietly(self._path(key))

    def read_with_version(self, key: str) -> Tuple[bytes, Version]:
        data = self.read_bytes(key)
        return data, _digest(data)

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Defer fsyncs until :meth:`sync` (see the class docstring for who may)."""
        before, self.defer_sync = self.defer_sync, True
        try:
            yield
        finally:
            self.defer_sync = before

    def delete_if_match(self, key: str, expected: Version) -> bool:
        """Delete ``key`` only if it still holds ``expected`` (compare-and-delete for lock takeover
        and release), under the same ``flock`` as :meth:`write_if_version`."""
        path = self._path(key)
        directory, name = os.path.split(path)
        if not os.path.isdir(directory):
            return False
        with _flocked(os.path.join(directory, f".{name}{CAS_MARK}")):
            if _file_version(path) != expected:
                return False
            _unlink_quietly(path)
            return True

    def list_keys(self, prefix: str) -> List[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        keys: List[str] = []
        for directory, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if _visible(d)]
            rel = os.path.relpath(directory, self.root).replace(os.sep, "/")
            keys.extend(f"{rel}/{f}" if rel != "." else f for f in files if _visible(f))
        return sorted(keys)

    def list_children(self, prefix: str) -> List[str]:
        try:
            return sorted(n for n in os.listdir(self._path(prefix.rstrip("/"))) if _visible(n))
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            return []


class S3Lake:
    """A lake under ``s3://bucket/prefix``. Uses boto3's default credential chain."""

    def __init__(self, uri: str, client: Optional[object] = None):
        rest = uri[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise StorageError(f"lake URI {uri!r} has no bucket; use s3://bucket[/prefix]")
        self.prefix = prefix.strip("/")
        self.uri = uri
        self._s3 = client
        self._checked = False

    @property
    def s3(self):
        if self._s3 is None:
            try:
                import boto3
            except ImportError:  # boto3 is the [aws] extra: a local-only install has none
                raise BadInputError(f"{self.uri} is an S3 lake and boto3 is not installed; "
                                    "install it with: pip install 'binance-lake[aws]'") from None

            self._s3 = boto3.client("s3")
        return self._s3

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def local_path(self, key: str) -> Optional[str]:
        return None

    def _fail(self, key: str, exc: Exception) -> LakeError:
        if isinstance(exc, BadInputError):  # boto3 missing: say so, it is not a storage fault
            return exc
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        if code == "NoSuchBucket":
            return StorageError(f"S3 bucket {self.bucket!r} does not exist; create it or fix --lake {self.uri}")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return StorageError(f"access denied to s3://{self.bucket}/{self._key(key)}; check IAM permissions")
        if code in ("NoCredentialsError", "PartialCredentialsError"):
            return StorageError(f"no AWS credentials for --lake {self.uri}; set AWS_PROFILE or "
                                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or run where a role provides them)")
        if code in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            return StorageError(f"cannot reach S3 for --lake {self.uri} ({code}); check the network, "
                                "AWS_ENDPOINT_URL and the region")
        return StorageError(f"S3 error {code} on s3://{self.bucket}/{self._key(key)}")

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            if _s3_code(exc) in ("NoSuchKey", "404") or self._absent_behind_403(key, exc):
                raise KeyError(key) from None
            raise self._fail(key, exc) from None

    def read_with_version(self, key: str) -> Tuple[bytes, Version]:
        """The object and its ETag, for a later :meth:`delete_if_match`."""
        try:
            reply = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))
            return reply["Body"].read(), reply["ETag"]
        except Exception as exc:
            if _s3_code(exc) in ("NoSuchKey", "404") or self._absent_behind_403(key, exc):
                raise KeyError(key) from None
            raise self._fail(key, exc) from None

    def sync(self) -> None:
        """Every PUT is durable when it returns: nothing to do."""

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        yield

    def delete_if_match(self, key: str, etag: Version) -> bool:
        """Delete only the version that was read (S3 conditional delete); False if it changed
        (412), is gone (404) or a concurrent conditional request on it won (409)."""
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=etag)
            return True
        except Exception as exc:
            if _s3_code(exc) in LOST_RACE:
                return False
            raise self._fail(key, exc) from None

    def version_of(self, key: str) -> Optional[Version]:
        """The ETag :meth:`write_if_version` compares with; None if the key is absent."""
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=self._key(key))["ETag"]
        except Exception as exc:
            if _s3_code(exc) in ("NoSuchKey", "404", "NotFound") or self._absent_behind_403(key, exc):
                return None
            raise self._fail(key, exc) from None

    def write_if_version(self, key: str, data: bytes, expected: Optional[Version]) -> Version:
        """Conditional PutObject: ``If-Match: <ETag read>``, or ``If-None-Match: *`` for a key that
        was absent. S3 accepts ``If-Match`` on PutObject since 2024-11-25 (AWS What's New, "Amazon
        S3 adds new functionality for conditional writes"); botocore must know the parameter:
        checked in 1.44.8, which the Lambda bundles and the Glue wheels pin (Glue 5.0's own 1.34.131
        lacks even ``IfNoneMatch``). moto checks ``If-Match`` on PutObject since getmoto/moto#8869
        (May 2025); 5.2.5 answers 412 on a mismatch and 404 on a missing key, as S3 does."""
        kwargs = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            reply = self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **kwargs)
        except Exception as exc:
            if _s3_code(exc) in LOST_RACE:
                raise WriteConflict(f"s3://{self.bucket}/{self._key(key)} changed since this run read it "
                                    f"(S3 {_s3_code(exc)}: another writer replaced or created it); "
                                    "nothing was overwritten") from None
            raise self._fail(key, exc) from None
        return reply["ETag"]

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            if _s3_code(exc) in ("NoSuchKey", "404", "NotFound") or self._absent_behind_403(key, exc):
                return False
            raise self._fail(key, exc) from None

    def _absent_behind_403(self, key: str, exc: Exception) -> bool:
        """S3 answers a missing key with 403, not 404, unless the caller may list the whole
        bucket; our roles may only list their zones' prefixes (least privilege). A listing
        of exactly that key tells "absent" (a KeyError) from a real access denial."""
        if _s3_code(exc) not in ("AccessDenied", "403"):
            return False
        try:
            found = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1)
        except Exception:
            return False  # cannot tell: report the original denial
        return not any(o["Key"] == self._key(key) for o in found.get("Contents", []))

    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        kwargs = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **kwargs)
            return True
        except Exception as exc:
            if if_absent and _s3_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise self._fail(key, exc) from None

    def delete(self, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._fail(key, exc) from None

    def _list(self, prefix: str, delimiter: Optional[str]) -> Iterator[dict]:
        full = self._key(prefix)
        kwargs = {"Bucket": self.bucket, "Prefix": full}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            yield from self.s3.get_paginator("list_objects_v2").paginate(**kwargs)
        except Exception as exc:
            raise self._fail(prefix, exc) from None

    def list_keys(self, prefix: str) -> List[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = [o["Key"][strip:] for page in self._list(prefix, None) for o in page.get("Contents", [])]
        return sorted(k for k in keys if all(_visible(part) for part in k.split("/")))

    def list_children(self, prefix: str) -> List[str]:
        base = prefix.rstrip("/") + "/"
        names = set()
        for page in self._list(base, "/"):
            for p in page.get("CommonPrefixes", []):
                names.add(p["Prefix"].rstrip("/").rsplit("/", 1)[-1])
            for o in page.get("Contents", []):
                names.add(o["Key"].rsplit("/", 1)[-1])
        return sorted(n for n in names if _visible(n))


def open_lake(uri: str, s3_client: Optional[object] = None) -> Lake:
    if not uri.strip():  # "" would silently mean the current directory
        raise BadInputError("the lake path is empty (--lake or BINANCE_LAKE); give a directory or s3://bucket/prefix")
    if uri.startswith("s3://"):
        return S3Lake(uri, s3_client)
    if "://" in uri:
        raise StorageError(f"unsupported lake URI {uri!r}; use a directory or s3://bucket/prefix")
    return LocalLake(uri)


def _s3_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_version(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return _digest(fh.read())
    except (FileNotFoundError, NotADirectoryError):
        return None


@contextlib.contextmanager
def _flocked(lock_path: str) -> Iterator[None]:
    """An exclusive OS lock on ``lock_path`` for the block (released by close, even if the process
    dies). flock locks belong to the open file, so threads of one process exclude each other too."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(directory: str) -> None:
    # Make the rename itself durable (POSIX); harmless where unsupported.
    _fsync_path(directory)


def _fsync_path(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    # NotADirectoryError: a file sits where the lake directory should be; nothing to remove.
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(path)


def _os_error_message(root: str, key: str, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
        return f"lake directory {root} is not writable ({exc.strerror}); choose another --lake or fix permissions"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device holding {root}; nothing was overwritten"
    return f"cannot write {key} under {root}: {exc.strerror}"
