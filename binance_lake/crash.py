"""Test-only crash points: SIGKILL this process at a named point of a sync.

``BINANCE_LAKE_CRASH_AT=<point>:<n>`` kills the process (SIGKILL, no cleanup, no
``finally``) the n-th time it reaches ``<point>``; unset, :func:`crash_point` is a dict
lookup and nothing else. The reliability tests use it to prove that a run killed at any
of these points loses and duplicates nothing once it is rerun (docs/reliability.md):

    fetch           before a request to Binance is sent
    marker          after a pending marker is written, before its raw file
    raw             after a raw file is written
    tmp:<zone>      a local lake file's temporary copy is written, not yet renamed
                    (zone = first key segment: raw, curated, ...)
    curated         after a curated partition is written, before its markers are deleted

``BINANCE_LAKE_PAUSE_AT=<point>:<seconds>`` (:func:`pause_point`) instead sleeps there, every
time, to hold a race window open so a concurrency test catches a race every time, not by luck
(tests/test_concurrent_writers.py):

    curated-merge   a curated partition was read and merged, its write is about to start
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter

ENV = "BINANCE_LAKE_CRASH_AT"
PAUSE_ENV = "BINANCE_LAKE_PAUSE_AT"
_seen: Counter = Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, n = spec.rpartition(":")
    if point != name:
        return
    with _lock:
        _seen[name] += 1
        hit = _seen[name] == int(n or 1)
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)


def pause_point(name: str, detail: str = "") -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    point, _, seconds = spec.rpartition(":")
    if point == name:
        # stderr, so a test can check the pause really happened (a lost hook must not pass quietly);
        # one write() per line, as partitions are written from several threads
        sys.stderr.write(f"pause point {name} {detail}: {float(seconds)}s from {time.time():.3f}\n")
        sys.stderr.flush()
        time.sleep(float(seconds))
