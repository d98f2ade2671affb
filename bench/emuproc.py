"""The project's Binance emulator in its own process, driven over a pipe.

Why a process: the emulator generates candles in Python under a lock. In the benchmark
process it would compete for the GIL with the client being measured and make every
client look slower than it is. In a separate process it behaves like a remote server
(on this machine's other core).

The contract is untouched: the child runs ``binance_lake.emulator.Emulator`` as is. The
only addition is a timer around ``handle`` so the report can show how much of a run was
the emulator's own serial work (``handle`` holds the emulator's lock while it generates
a page), a floor that real Binance does not have.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any, Dict, Optional

# "Realistic conditions" of issue 8: 50 ms per request, 6000 weight per minute enforced.
REALISTIC = {"latency_s": 0.05, "weight_limit": 6000, "weight_window_s": 60}


def _child(conn: Any, kwargs: Dict[str, Any]) -> None:
    from binance_lake.emulator import Emulator

    emu = Emulator(**kwargs)
    busy = {"handle_s": 0.0}
    handle = emu.handle

    def timed_handle(*args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return handle(*args, **kw)
        finally:
            busy["handle_s"] += time.perf_counter() - t0

    emu.handle = timed_handle  # type: ignore[method-assign]
    conn.send(emu.start())
    while True:
        name, args, kw = conn.recv()
        if name == "stop":
            emu.stop()
            conn.send(None)
            return
        try:
            conn.send(("ok", _command(emu, busy, name, args, kw)))
        except Exception as exc:  # report to the parent rather than die silently
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _command(emu: Any, busy: Dict[str, float], name: str, args: tuple, kw: Dict[str, Any]) -> Any:
    if name == "stats":
        return {**emu.stats, "handle_s": round(busy["handle_s"], 3), "used_weight": emu.used_weight()}
    if name == "requests":
        # Aggregates only: a year of klines is ~530 records, a pipe can carry those, but
        # the report needs sums.
        recs = list(emu.requests)
        paths: Dict[str, int] = {}
        for r in recs:
            paths[r.path] = paths.get(r.path, 0) + 1
        return {"requests": len(recs), "weight": sum(r.weight for r in recs),
                "max_used_weight": max((r.used_weight_after for r in recs), default=0), "paths": paths}
    if name == "reset":
        busy["handle_s"] = 0.0
        emu.requests.clear()
        for k in emu.stats:
            emu.stats[k] = 0
        return emu.reset_limits()
    result = getattr(emu, name)(*args, **kw)
    return len(result) if isinstance(result, list) else result


class EmulatorProcess:
    """``with EmulatorProcess(now_ms=..., **REALISTIC) as emu: emu.base_url; emu.call(...)``."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.base_url = ""
        self._conn: Optional[Any] = None
        self._proc: Optional[Any] = None

    def __enter__(self) -> EmulatorProcess:
        ctx = mp.get_context("spawn")  # no inherited threads or locks from the parent
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child, self.kwargs), daemon=True)
        self._proc.start()
        self.base_url = self._conn.recv()
        return self

    def call(self, name: str, *args: Any, **kw: Any) -> Any:
        assert self._conn is not None
        self._conn.send((name, args, kw))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"emulator {name}: {value}")
        return value

    def stats(self) -> Dict[str, Any]:
        return self.call("stats")

    def reset(self) -> None:
        """Fresh counters and weight window between measured runs."""
        self.call("reset")

    def __exit__(self, *exc: Any) -> None:
        if self._conn is not None and self._proc is not None:
            self._conn.send(("stop", (), {}))
            self._conn.recv()
            self._proc.join(timeout=5)
