"""Faults: injected misbehaviour matched against request paths."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

# kind -> (HTTP status, message) for the "-NNNN" error-body kinds.
ERROR_KINDS: dict[str, tuple[int, str]] = {
    "-1000": (500, "An unknown error occurred while processing the request."),
    "-1001": (503, "Internal error; unable to process your request. Please try again."),
    "-1003": (429, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                   "Please use WebSocket Streams for live updates to avoid polling the API."),
    "-1007": (408, "Timeout waiting for response from backend server. Send status unknown; "
                   "execution status unknown."),
    "-1008": (503, "Server is currently overloaded with other requests. Please try again in a few minutes."),
    "-1021": (400, "Timestamp for this request is outside of the recvWindow."),
    "-1022": (400, "Signature for this request is not valid."),
    "-1121": (400, "Invalid symbol."),
    "-2015": (401, "Invalid API-key, IP, or permissions for action."),
}
HTTP_KINDS = frozenset({"500", "502", "503", "504"})
BODY_KINDS = frozenset({"truncated", "incomplete", "malformed", "shuffle", "duplicate", "timeout"})
# "403": a WAF rule fired (rest-api.md "HTTP Return Codes"); the body is an HTML page, not JSON.
KINDS = frozenset({"429", "418", "403", "reset"}) | HTTP_KINDS | BODY_KINDS | ERROR_KINDS.keys()

PathSpec = Union[str, Sequence[str], None]


@dataclass
class Fault:
    """A fault for requests whose path matches `path` (None = any path; a list = any of them).

    times: how many matching requests get it (None = unlimited). every=N: only every Nth
    matching request gets it. rate (with seed): each matching request gets it with that
    probability, the kind drawn from `kinds` (see Fault.random). delay_s: how long a
    "timeout" stalls before answering. status: override the HTTP status of "-NNNN" kinds.
    """

    kind: str
    path: PathSpec = "/api/v3/klines"
    times: Optional[int] = 1
    retry_after_s: int = 1
    every: Optional[int] = None
    delay_s: float = 11.0
    status: Optional[int] = None
    rate: Optional[float] = None
    kinds: Sequence[str] = ()
    seed: int = 0
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)
    _rng: random.Random = field(default_factory=random.Random, init=False, repr=False)  # seeded below

    def __post_init__(self) -> None:
        for k in (self.kinds or (self.kind,)):
            if k not in KINDS and k != "random":
                raise ValueError(f"unknown fault kind {k!r}; known: {sorted(KINDS)}")
        if self.kind == "random" and not self.kinds:
            raise ValueError("a random fault needs kinds")
        self._rng = random.Random(self.seed)

    @classmethod
    def random(cls, seed: int, rate: float, kinds: Sequence[str], path: PathSpec = None,
               times: Optional[int] = None, **kw) -> Fault:
        """A seeded fault storm: each matching request fails with probability `rate`."""
        return cls("random", path=path, times=times, rate=rate, kinds=tuple(kinds), seed=seed, **kw)

    def matches(self, path: str) -> bool:
        if self.path is None:
            return True
        if isinstance(self.path, str):
            return self.path == path
        return path in self.path

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def trigger(self) -> Optional[str]:
        """Count one matching request; return the kind to apply to it, or None."""
        self.seen += 1
        if self.exhausted:
            return None
        if self.every is not None and self.seen % self.every:
            return None
        kind = self.kind
        if self.rate is not None:
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(list(self.kinds))
        self.fired += 1
        return kind


class FaultQueue:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pick(self, path: str) -> tuple[Optional[Fault], Optional[str]]:
        """The first queued fault that fires for this request, in injection order."""
        with self._lock:
            chosen: tuple[Optional[Fault], Optional[str]] = (None, None)
            for f in self._faults:
                if not f.matches(path):
                    continue
                if chosen[0] is not None:
                    f.seen += 1  # later faults still count the request for their `every`
                    continue
                kind = f.trigger()
                if kind is not None:
                    chosen = (f, kind)
            self._faults = [f for f in self._faults if not f.exhausted]
            return chosen
