"""A lease lock stored in the lake itself, so one mechanism serves a directory and S3.

Why: a curated partition is rewritten whole from (existing partition + pending raw
files). Two transforms of the same symbol at once would each merge their own view and
the last writer would drop the other's rows, then both delete their markers: rows lost.
Holding this lock across read-merge-write-unmark makes those steps serial per symbol.

The lock is a key created only if absent (``Lake.write_if_version(..., None)``: an OS-locked
check locally, ``If-None-Match: *`` on S3) holding ``{owner, host, pid, pid_start, expires_at}``.
While the holder works, a heartbeat thread renews the lease (a conditional write on the version it
last wrote), so a long rebuild or a paused merge never outlives it. A holder is taken over when
it is gone: on a local lake when its pid no longer runs on this host (at once: a SIGKILLed run
must not block the rerun; a live pid is never taken over, expired or not), elsewhere when its
lease expired without renewal. A holder whose renewal finds the lock replaced has lost it and
stops writing (``LeaseLost``). The lease is an optimisation: what guarantees that no writer
drops another's rows is the compare-and-swap of every curated write (``binance_lake.fold``).
Extraction never takes it: raw files are immutable with deterministic or unique keys.

One lease per transform run (issue 21, lever 4): the tick folds every symbol and table, and a
lease per (table, symbol) cost a PUT and a DELETE each (~500 tier-1 requests a tick at 100
symbols). ``run_lock`` takes one key, ``curated/_locks/run.lock``, whose body names the (table,
symbol) pairs it stands for (its scope); inside it ``lake_lock`` of a pair in scope takes nothing.
The per-pair writers (rebuild, backfill, verify's repair, the Glue jobs) keep their own keys, so
they still run side by side, and the two kinds exclude each other like a pair of flags: the run
creates its key, then lists ``curated/_locks/`` and waits for every live pair lock in its scope; a
pair writer creates its key, then reads the run key and, if a live run covers its pair, deletes
its own key and waits. Whichever of the two wrote second sees the other, because S3 reads and
lists are strongly consistent after a PUT ("Any read (GET or LIST request) that is initiated
following the receipt of a successful PUT response will return the data written by the PUT
request": Amazon S3 User Guide, "Amazon S3 data consistency model",
docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel), and a local
directory is (os.walk after the create). Only the pair writer ever steps back, so they cannot
both wait on each other.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, Iterator, Optional, Tuple

from binance_lake.errors import LeaseLost, LockHeldError, StorageError, WriteConflict
from binance_lake.lake import Lake, Version
from binance_lake.layout import LOCKS, lock_key, run_lock_key

LEASE_S = 300.0  # far longer than one symbol's transform; only a dead holder's lock gets this old
RENEWALS_PER_LEASE = 3  # renew every third of the lease: two renewals may fail before it lapses
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


@dataclass
class Lease:
    """This process's hold on one lock key: what it last wrote there, and whether it lost it."""

    lake: Lake
    key: str
    owner: str
    lease_s: float
    version: Version = None
    lost: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def body(self) -> bytes:
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "pid_start": _pid_start(os.getpid()), "expires_at": time.time() + self.lease_s}).encode()

    def renew(self) -> None:
        """Push ``expires_at`` forward, only over the lock this holder last wrote."""
        try:
            self.version = self.lake.write_if_version(self.key, self.body(), self.version)
        except WriteConflict:
            self.lost.set()
            log.error("lease %s was taken over while this run worked (it stalled longer than the %.0fs lease); "
                      "it stops writing", self.key, self.lease_s)
        except StorageError as exc:  # S3 unreachable for a moment: try again at the next beat
            log.warning("could not renew lease %s: %s", self.key, exc)

    def check(self) -> None:
        """Raise ``LeaseLost`` if another run took this lease over: stop before writing."""
        if self.lost.is_set():
            raise LeaseLost(f"{self.key} was taken over by another run while this one worked (it stalled longer "
                            f"than the {self.lease_s:.0f}s lease, {LEASE_ENV}); nothing of the other run was "
                            "overwritten and this run's input stays pending in raw: rerun it")


Scope = FrozenSet[Tuple[str, str]]  # the (table, symbol) pairs a run lease stands for


@dataclass
class RunLease(Lease):
    """A transform run's one lease, standing for the (table, symbol) locks of ``scope``."""

    scope: Scope = frozenset()

    def body(self) -> bytes:
        # The scope is in the body so that a pair writer outside it need not wait for the run.
        held = json.loads(super().body())
        held["scope"] = sorted([table, symbol] for table, symbol in self.scope)
        return json.dumps(held).encode()

    def covers(self, lake: Lake, table: str, symbol: str) -> bool:
        return lake.uri == self.lake.uri and (table, symbol) in self.scope


# The lease each (lake, lock key) is held under by this process; at most one (threads queue first).
_HELD: Dict[Tuple[str, str], Lease] = {}
# The run lease the current thread's transform run holds: its lake_lock calls in scope take nothing.
_RUN: contextvars.ContextVar[Optional[RunLease]] = contextvars.ContextVar("binance_lake_run_lease", default=None)


def check_held(lake: Lake, table: str, symbol: str) -> None:
    """Before a curated write: raise ``LeaseLost`` if this process's lease on (table, symbol) was
    taken over. Writing without holding a lease is allowed (the conditional write still guards)."""
    lease = _HELD.get((lake.uri, lock_key(table, symbol)))
    if lease is not None:
        lease.check()


@contextlib.contextmanager
def lake_lock(lake: Lake, table: str, symbol: str, lease_s: Optional[float] = None, wait_s: float = WAIT_S
              ) -> Iterator[Lease]:
    """The (table, symbol) writer lock: held by every write of that symbol's curated partitions
    (inside a transform run that covers the pair, by the run's one lease: nothing to take)."""
    key = lock_key(table, symbol)
    run = _RUN.get()
    if run is not None and run.covers(lake, table, symbol):
        _HELD[(lake.uri, key)] = run  # check_held before each write sees the run's lease
        try:
            yield run
        finally:
            _HELD.pop((lake.uri, key), None)
        return
    local = _thread_lock(lake, key)
    if not local.acquire(timeout=wait_s):
        raise LockHeldError(f"{key} is held by another run (a thread of this process) for over {wait_s:.1f}s")
    try:
        lease = Lease(lake, key, uuid.uuid4().hex, default_lease_s() if lease_s is None else lease_s)
        _acquire(lease, wait_s, (table, symbol))
        with _renewed(lease):
            _HELD[(lake.uri, key)] = lease
            try:
                yield lease
            finally:
                _HELD.pop((lake.uri, key), None)
    finally:
        local.release()


@contextlib.contextmanager
def run_lock(lake: Lake, scope: Iterable[Tuple[str, str]], lease_s: Optional[float] = None,
             wait_s: float = WAIT_S) -> Iterator[RunLease]:
    """One lease for a whole transform run over the (table, symbol) pairs of ``scope``: two
    requests (create, release) and one listing, however many symbols. Waits for the live pair
    locks of its scope (a rebuild, a backfill, a repair), taking over dead ones as they would."""
    key = run_lock_key()
    local = _thread_lock(lake, key)
    if not local.acquire(timeout=wait_s):
        raise LockHeldError(f"{key} is held by another run (a thread of this process) for over {wait_s:.1f}s")
    try:
        deadline = time.time() + wait_s
        lease = RunLease(lake, key, uuid.uuid4().hex, default_lease_s() if lease_s is None else lease_s,
                         scope=frozenset(scope))
        _acquire(lease, wait_s)
        with _renewed(lease):  # renewed while it waits for the pair writers too
            _wait_for_pair_writers(lease, deadline)
            token = _RUN.set(lease)
            try:
                yield lease
            finally:
                _RUN.reset(token)
    finally:
        local.release()


@contextlib.contextmanager
def _renewed(lease: Lease) -> Iterator[None]:
    """Renew ``lease`` in a heartbeat thread while the block runs; release it at the end."""
    beat = threading.Thread(target=_heartbeat, args=(lease,), name=f"lease {lease.key}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        lease.done.set()
        beat.join()
        _release(lease)


def _heartbeat(lease: Lease) -> None:
    # A daemon thread: a SIGKILLed or crashed holder stops renewing, and its lease then runs out.
    while not lease.done.wait(lease.lease_s / RENEWALS_PER_LEASE):
        lease.renew()
        if lease.lost.is_set():
            return


def _acquire(lease: Lease, wait_s: float, pair: Optional[Tuple[str, str]] = None) -> None:
    """Create ``lease.key``, waiting for (or taking over from a dead) holder. ``pair``: a pair
    writer's (table, symbol), which also steps back while a live transform run covers it."""
    lake, key = lease.lake, lease.key
    deadline, pause, told = time.time() + wait_s, 0.02, False
    held: Optional[Dict[str, Any]] = None
    while True:
        try:
            lease.version = lake.write_if_version(key, lease.body(), None)
        except WriteConflict:
            # held (or being taken over): look at who holds it
            held, etag = _read(lake, key)
            if held is not None and _stale(lake, held):
                _delete_stale(lake, key, etag)  # the holder is gone; the next create decides who takes over
                continue
            if held is not None and not told:
                told = True  # one line, so a waiting run does not look hung
                log.warning("waiting for %s, held by host %s pid %s; it expires in %.0fs if that run died", key,
                            held.get("host", "?"), held.get("pid", "?"),
                            float(held.get("expires_at", 0)) - time.time())
        else:
            held = _step_back_for_run(lease, pair, deadline)
            if held is None:
                return
        if time.time() > deadline:
            raise LockHeldError(f"{key} is held by another run (host {held.get('host') if held else '?'}) "
                                f"for over {wait_s:.0f}s; if no other run is active, delete that key")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _step_back_for_run(lease: Lease, pair: Optional[Tuple[str, str]], deadline: float) -> Optional[Dict[str, Any]]:
    """After a pair writer created its key: None if no live transform run covers its pair (it holds
    the lock). Else it deletes its key (the run waits for that), waits for the run to end (reading
    its key only) and returns it, to create its key again; or at ``deadline``, to give up."""
    if pair is None:
        return None
    lake = lease.lake
    try:
        run = _run_in_the_way(lake, pair)
    except BaseException:
        lake.delete_if_match(lease.key, lease.version)  # never leave a key behind that nobody renews
        raise
    if run is None:
        return None
    lake.delete_if_match(lease.key, lease.version)
    lease.version = None
    log.warning("waiting for the transform run of host %s pid %s, which covers %s", run.get("host", "?"),
                run.get("pid", "?"), lease.key)
    pause = 0.02
    waiting: Optional[Dict[str, Any]] = run
    while waiting is not None and time.time() <= deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
        waiting = _run_in_the_way(lake, pair)
    return run


def _run_in_the_way(lake: Lake, pair: Tuple[str, str]) -> Optional[Dict[str, Any]]:
    """The live transform run lease covering ``pair`` (after this writer created its own key), or None."""
    held, _ = _read(lake, run_lock_key())
    if held is None or _stale(lake, held):
        return None  # a dead run's key is taken over by the next run, not by a pair writer
    scope = held.get("scope")
    if isinstance(scope, list) and list(pair) not in scope:
        return None
    return held


def _wait_for_pair_writers(run: RunLease, deadline: float) -> None:
    """Once the run's key exists: wait until no live pair lock of its scope is left (one listing
    when there is none), deleting dead ones. A pair writer that created its key after the listing
    reads the run's key and steps back."""
    lake, mine = run.lake, {lock_key(table, symbol) for table, symbol in run.scope}
    pause, told = 0.02, False
    while True:
        busy = None
        for key in lake.list_keys(LOCKS + "/"):
            if key not in mine:
                continue
            held, etag = _read(lake, key)
            if held is not None and _stale(lake, held):
                _delete_stale(lake, key, etag)
            elif held is not None:
                busy = (key, held)
                break
        if busy is None:
            return
        if not told:
            told = True
            log.warning("this transform run waits for %s, held by host %s pid %s", busy[0],
                        busy[1].get("host", "?"), busy[1].get("pid", "?"))
        if time.time() > deadline:
            raise LockHeldError(f"{busy[0]} is held by another run (host {busy[1].get('host', '?')}) for too long; "
                                "if no other run is active, delete that key")
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
    # Liveness first: a holder on this host whose process still runs is working (its heartbeat
    # renews the lease; if it is stopped or paused it still means to write), so it is never
    # taken over, however old its lease. Only where no pid can be checked does expiry decide.
    if lake.local_path("") is not None and held.get("host") == socket.gethostname():
        return not _pid_alive(int(held.get("pid", 0)), held.get("pid_start"))
    return float(held.get("expires_at", 0)) < time.time()


def _pid_alive(pid: int, started: Any = None) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # The pid may have been reused by a new process since the holder died: compare start times.
    return started is None or _pid_start(pid) in (None, started)


def _pid_start(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (Linux /proc/<pid>/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _release(lease: Lease) -> None:
    # Only the lock this holder last wrote: a lock taken over meanwhile belongs to its new holder.
    if not lease.lost.is_set():
        lease.lake.delete_if_match(lease.key, lease.version)
