"""Lake storage: a local directory or an S3 prefix behind one narrow interface.

Keys are ``/``-separated paths relative to the lake root (``raw/klines/...``). Writes
are atomic: locally a temporary dot-file in the same directory is fsynced and renamed
over the target (readers never see half a file; a crash leaves only a dot-file that
every listing and reader ignores); on S3 a single PUT is atomic by construction.
``write_bytes(..., if_absent=True)`` creates a key only if it does not exist (hard link
locally, ``If-None-Match: *`` on S3), which makes immutable raw files safe under
concurrent runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import uuid
from typing import Any, ContextManager, Iterator, List, Optional, Protocol, Tuple

from binance_lake.crash import crash_point
from binance_lake.errors import BadInputError, StorageError

TMP_MARK = ".tmp-"


# What identifies the version of a key that was read, for a later conditional delete: the S3
# ETag, or (local) the bytes themselves (a lock body is unique per holder: it carries a uuid).
Version = Any


class Lake(Protocol):
    """What every storage offers; locking and durability need only this (no isinstance)."""

    uri: str

    def read_bytes(self, key: str) -> bytes: ...
    def read_with_version(self, key: str) -> Tuple[bytes, Version]: ...
    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool: ...
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

    def write_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        path = self._path(key)
        directory, name = os.path.split(path)
        tmp = os.path.join(directory, f".{name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.makedirs(directory, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if not self.defer_sync:
                    os.fsync(fh.fileno())
            crash_point(f"tmp:{key.split('/', 1)[0]}")  # test hook: die with only the temp file written
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
        return data, data

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Defer fsyncs until :meth:`sync` (see the class docstring for who may)."""
        before, self.defer_sync = self.defer_sync, True
        try:
            yield
        finally:
            self.defer_sync = before

    def delete_if_match(self, key: str, expected: Version) -> bool:
        """Delete ``key`` only if it still holds ``expected`` (compare-and-delete for lock takeover).

        The file is first renamed aside (atomic), compared, then removed; if it changed, it is
        linked back unless a new one was created meanwhile.
        """
        path = self._path(key)
        directory, name = os.path.split(path)
        aside = os.path.join(directory, f".{name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        try:
            with open(aside, "rb") as fh:
                if fh.read() == expected:
                    return True
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)  # not ours to delete: put it back
            return False
        finally:
            _unlink_quietly(aside)

    def list_keys(self, prefix: str) -> List[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        keys = []
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
            import boto3

            self._s3 = boto3.client("s3")
        return self._s3

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def local_path(self, key: str) -> Optional[str]:
        return None

    def _fail(self, key: str, exc: Exception) -> StorageError:
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
        """Delete only the version that was read (S3 conditional delete); False if it changed."""
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=etag)
            return True
        except Exception as exc:
            if _s3_code(exc) in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                return False
            raise self._fail(key, exc) from None

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
            if if_absent and _s3_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
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
