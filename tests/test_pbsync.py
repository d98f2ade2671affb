"""The tick loads python-binance's synchronous client only (issue 21): no aiohttp, no async client,
and the rest of the library still there for whoever asks for it in the same process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A fresh process: the emulator served on 127.0.0.1, then signed and public requests through the
# project's client (python-binance underneath), then what got imported.
TICK_REQUESTS = """
    import sys
    from binance_lake.emulator import Emulator
    from binance_lake.sources.rest.client import BinanceClient, ClientConfig
    emu = Emulator(now_ms=1709424030000, seed=1)
    emu.add_api_key("k-0123456789", "s-0123456789")
    with emu.serve() as url:
        client = BinanceClient(ClientConfig(base_url=url, api_key="k-0123456789", api_secret="s-0123456789"))
        assert client.server_time() == 1709424030000
        client.all_orders("BTCUSDT")  # signed: HMAC checked by the emulator
        try:
            client.symbol_info("NOSUCHPAIR")  # the error path: python-binance's exception classes
        except Exception as exc:
            print("error:", type(exc).__name__)
    loaded = [m for m in ("aiohttp", "binance.async_client", "binance.ws.streams", "binance.ws.depthcache")
              if m in sys.modules]
    print("loaded:", ",".join(loaded))
"""


def run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_requests_do_not_import_the_async_half() -> None:
    out = run(TICK_REQUESTS)
    assert "error: UnknownSymbolError" in out  # BinanceAPIException was caught and translated
    assert "loaded: \n" in out  # nothing of the async client, aiohttp or the websocket managers


def test_the_whole_library_is_still_there_on_first_use() -> None:
    out = run(TICK_REQUESTS + """
    import binance
    from binance import ThreadedWebsocketManager  # noqa: F401
    assert binance.AsyncClient.__name__ == "AsyncClient" and "aiohttp" in sys.modules
    assert binance.Client is sys.modules["binance.client"].Client  # one module, not a second copy
    from binance.client import Client
    assert Client is binance.Client and binance.__version__
    print("whole: ok")
    """)
    assert "whole: ok" in out


def test_an_earlier_full_import_is_left_alone() -> None:
    out = run("""
    import binance, sys
    from binance_lake.sources.rest import pbsync
    assert pbsync.client_class() is binance.Client
    print("full:", "aiohttp" in sys.modules)
    """)
    assert "full: True" in out
