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
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "BINANCE_LAKE_CRASH_AT"
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
