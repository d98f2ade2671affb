"""A lease lock stored in the lake itself, so one mechanism serves a directory and S3.

Why: a curated partition is rewritten whole from (existing partition + pending raw
files). Two transforms of the same symbol at once would each merge their own view and
the last writer would drop the other's rows, then both delete their markers: rows lost.
Holding this lock across read-merge-write-unmark makes those steps serial per symbol.

The lock is a key created only if absent (hard link locally, ``If-None-Match: *`` on
S3) holding ``{owner, host, pid, expires_at}``. A holder that died is taken over when
its lease expires or, on a local lake, at once when its pid no longer exists on this
host (a SIGKILLed run must not block the rerun). Extraction never takes it: raw files
are immutable with deterministic or unique keys.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Dict, Iterator, Optional, Tuple

from binance_lake.errors import LockHeldError, StorageError
from binance_lake.lake import Lake, Version
from binance_lake.layout import lock_key

LEASE_S = 300.0  # far longer than one symbol's transform; only a dead holder's lock gets this old
WAIT_S = 600.0
# On S3 a killed holder cannot be detected (no pid to check), so its lock blocks transforms of
# that symbol until the lease ends: the next 5-minute tick. Operators (and tests) may shorten it.
LEASE_ENV = "BINANCE_LAKE_LOCK_LEASE_S"

log = logging.getLogger(__name__)


def default_lease_s() -> float:
    try:
        return float(os.environ.get(LEASE_ENV, LEASE_S))
    except ValueError:
        raise StorageError(f"{LEASE_ENV} must be a number of seconds") from None


# Threads of one process (a backfill's archive workers) queue here first, so they take turns
# without polling the lake's key; other processes and hosts still meet at the key itself.
_THREAD_LOCKS: Dict[Tuple[str, str], threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(lake: Lake, key: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault((lake.uri, key), threading.Lock())


@contextlib.contextmanager
def lake_lock(lake: Lake, table: str, symbol: str, lease_s: Optional[float] = None, wait_s: float = WAIT_S
              ) -> Iterator[None]:
    """The (table, symbol) writer lock: held by every write of that symbol's curated partitions."""
    key, owner = lock_key(table, symbol), uuid.uuid4().hex
    local = _thread_lock(lake, key)
    if not local.acquire(timeout=wait_s):
        raise LockHeldError(f"{key} is held by another run (a thread of this process) for over {wait_s:.1f}s")
    try:
        _acquire(lake, key, owner, default_lease_s() if lease_s is None else lease_s, wait_s)
        try:
            yield
        finally:
            _release(lake, key, owner)
    finally:
        local.release()


def _acquire(lake: Lake, key: str, owner: str, lease_s: float, wait_s: float) -> None:
    deadline, pause, told = time.time() + wait_s, 0.02, False
    while True:
        body = {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
                "expires_at": time.time() + lease_s}
        if lake.write_bytes(key, json.dumps(body).encode(), if_absent=True):
            return
        held, etag = _read(lake, key)
        if held is not None and _stale(lake, held):
            _delete_stale(lake, key, etag)  # the holder is gone; the next create decides who takes over
            continue
        if held is not None and not told:
            told = True  # one line, so a waiting run does not look hung
            log.warning("waiting for %s, held by host %s pid %s; it expires in %.0fs if that run died", key,
                        held.get("host", "?"), held.get("pid", "?"), float(held.get("expires_at", 0)) - time.time())
        if time.time() > deadline:
            raise LockHeldError(f"{key} is held by another run (host {held.get('host') if held else '?'}) "
                                f"for over {wait_s:.0f}s; if no other run is active, delete that key")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _read(lake: Lake, key: str) -> Tuple[Optional[Dict[str, Any]], Version]:
    """(lock body, version); (None, None) if released meanwhile."""
    try:
        data, version = lake.read_with_version(key)
    except KeyError:
        return None, None  # released meanwhile: try again
    try:
        held = json.loads(data)
    except ValueError:
        held = None
    if not _well_formed(held):
        # Not a lease this code wrote (``null``, a list, a text expiry): no live holder can be
        # behind it, so it is treated as expired and taken over, with a word, instead of a
        # traceback or a silent wait for WAIT_S.
        log.warning("lock %s does not hold a valid lease (%s); taking it over", key, type(held).__name__)
        return {"expires_at": 0}, version
    return held, version


def _well_formed(held: Any) -> bool:
    if not isinstance(held, dict):
        return False
    try:
        float(held.get("expires_at", 0))
        int(held.get("pid", 0))
    except (TypeError, ValueError):
        return False
    return True


def _delete_stale(lake: Lake, key: str, version: Version) -> None:
    # Delete only the stale lock that was read: two runs that both found it stale cannot
    # delete each other's fresh lock (the loser's compare-and-delete fails, and it waits).
    lake.delete_if_match(key, version)


def _stale(lake: Lake, held: Dict[str, Any]) -> bool:
    if float(held.get("expires_at", 0)) < time.time():
        return True
    local = lake.local_path("") is not None and held.get("host") == socket.gethostname()
    return local and not _pid_alive(int(held.get("pid", 0)))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release(lake: Lake, key: str, owner: str) -> None:
    held, _ = _read(lake, key)
    if held is not None and held.get("owner") == owner:
        lake.delete(key)
