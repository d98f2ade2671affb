"""binance-lake: Binance spot candles and account orders into a correct data lake.

The Python API (see README "Python API"): ``binance_lake.open_lake("./lake")`` returns a
:class:`LakeReader` with ``candles``, ``orders``, ``sql``, ``symbols``, ``intervals`` and
``status``. Importing the package stays cheap (no pyarrow or DuckDB until a read needs them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from binance_lake.api import LakeReader, open_lake

__version__ = "0.1.0"

__all__ = ["LakeReader", "__version__", "open_lake"]
_API_NAMES = ("LakeReader", "open_lake")


def __getattr__(name: str) -> Any:
    """The Python API loads on first use (PEP 562). Every Lambda handler imports this package but
    never its reader, and the packages carry only what the handlers import (py_cdk/closure.py):
    an eager import here made the extractors' package carry the API and, through its status,
    the fold (tests/cdk/test_bundling.py)."""
    if name in _API_NAMES:
        return getattr(importlib.import_module("binance_lake.api"), name)
    raise AttributeError(f"module 'binance_lake' has no attribute {name!r}")
