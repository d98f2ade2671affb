"""python-binance's synchronous half, without its package ``__init__``.

Why: python-binance's ``binance/__init__.py`` (1.0.37, the same in upstream master) imports
``binance.async_client`` (aiohttp, an SSL default context), the websocket managers and the
depth caches before ``binance.client`` can load: 0.35-0.7 s of every cold start, although
the tick calls one synchronous ``Client`` (docs/benchmarks.md, "Issue 21: the tick's
imports", with the ``python -X importtime`` profile). Python imports a submodule after its
parent package, so ``from binance.client import Client`` always runs that ``__init__``.

What this does instead: if nothing has imported ``binance`` yet, it registers the package
as a module object with the real package's path and spec but without running its
``__init__`` (the submodules ``binance.client``, ``binance.exceptions`` and what they import
load from the installed files as usual). The first access to any other attribute of the
package (``binance.AsyncClient``, ``from binance import ThreadedWebsocketManager``)
runs the real ``__init__`` into that module (PEP 562 ``__getattr__``), so code in the same
process that wants the whole library still gets it, unchanged.

python-binance stays what does the requests, the signing and the error parsing; only its
import order changes.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from typing import Any, Tuple

_PACKAGE = "binance"
_lock = threading.Lock()


def _complete(module: types.ModuleType, spec: Any) -> None:
    """Run the package's real ``__init__`` into ``module`` (once)."""
    with _lock:
        if module.__dict__.get("__binance_lake_complete__"):
            return
        module.__dict__["__binance_lake_complete__"] = True
        module.__dict__.pop("__getattr__", None)
        spec.loader.exec_module(module)


def _register_package() -> None:
    """Put the ``binance`` package in ``sys.modules`` without executing its ``__init__``."""
    with _lock:
        if _PACKAGE in sys.modules:
            return  # already imported (whole or by us): nothing to save, nothing to change
        spec = importlib.util.find_spec(_PACKAGE)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return  # not installed as a regular package: let the normal import report it
        module = importlib.util.module_from_spec(spec)

        def __getattr__(name: str) -> Any:  # PEP 562: the rest of the package on first use
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)  # dunder probes (e.g. __path__ lookups) do not load it
            _complete(module, spec)
            return getattr(module, name)

        module.__dict__["__getattr__"] = __getattr__
        sys.modules[_PACKAGE] = module


def client_class() -> Any:
    """python-binance's synchronous ``Client`` class."""
    _register_package()
    from binance.client import Client

    return Client


def exception_classes() -> Tuple[Any, Any]:
    """``(BinanceAPIException, BinanceRequestException)``."""
    _register_package()
    from binance.exceptions import BinanceAPIException, BinanceRequestException

    return BinanceAPIException, BinanceRequestException
