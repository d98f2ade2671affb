"""binance-lake: Binance spot candles and account orders into a correct data lake.

The Python API (see README "Python API"): ``binance_lake.open_lake("./lake")`` returns a
:class:`LakeReader` with ``candles``, ``orders``, ``sql``, ``symbols``, ``intervals`` and
``status``. Importing the package stays cheap (no pyarrow or DuckDB until a read needs them).
"""

from binance_lake.api import LakeReader, open_lake

__version__ = "0.1.0"

__all__ = ["LakeReader", "__version__", "open_lake"]
