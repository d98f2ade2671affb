"""`binance-lake sync` run as a command leaves out the optional pandas (issue 21, the tick under 1 s):
pyarrow would import it on its first type-inferring conversion (0.3-0.6 s of the 1-symbol tick).
The curated rows are the same as those of a process where pandas is loaded, and a library
caller's process (cli.main called with arguments, the Python API) keeps pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from binance_lake.cli import main
from binance_lake.schema import LINEAGE_COLUMNS
from tests.conftest import API_KEY, API_SECRET, NOW_MS

ROOT = Path(__file__).resolve().parent.parent
DAY = ["--start", "2024-03-01", "--end", "2024-03-01T02:00:00Z"]

# A fresh process that runs the CLI as the command does (main() reads sys.argv), then reports
# whether pandas was imported and whether it could be.
AS_COMMAND = """
    import json, sys
    from binance_lake import cli
    codes = []
    for argv in json.loads(sys.argv[1]):
        sys.argv = ["binance-lake", *argv]
        codes.append(cli.main())
    loaded = "pandas" in sys.modules
    try:
        import pandas  # noqa: F401
        blocked = ""
    except ModuleNotFoundError as exc:
        blocked = str(exc)
    print(json.dumps({"codes": codes, "pandas_loaded": loaded, "blocked": blocked}))
"""


def commands(base_url: str, lake: str) -> list:
    common = ["--lake", lake, "--base-url", base_url]
    return [["sync", "candles", "--symbol", "BTCUSDT", *DAY, *common],
            ["sync", "orders", "--symbol", "BTCUSDT", *common]]


def curated(lake: Path) -> dict:
    """Every curated partition's rows without the lineage columns (fetch time, raw key)."""
    out = {}
    for f in sorted(lake.glob("curated/**/*.parquet")):
        t = pq.ParquetFile(f).read()
        out[str(f.relative_to(lake).parent)] = t.select(
            [c for c in t.column_names if c not in LINEAGE_COLUMNS]).to_pylist()
    return out


def test_sync_as_a_command_never_imports_pandas_and_curates_the_same_rows(emulator, base_url, tmp_path,
                                                                            monkeypatch, capsys):
    import pandas  # noqa: F401  (the in-process run below has pandas loaded, as a notebook would)

    emulator.generate_orders("BTCUSDT", 30, NOW_MS - 86_400_000, NOW_MS - 60_000, seed=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BINANCE_API_KEY": API_KEY, "BINANCE_API_SECRET": API_SECRET}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(AS_COMMAND),
                           json.dumps(commands(base_url, str(tmp_path / "cmd")))],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0]
    assert report["pandas_loaded"] is False
    assert "left out of binance-lake's sync and transform processes" in report["blocked"]

    # The same commands called as a library caller would: pandas stays importable and loaded.
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", API_SECRET)
    for argv in commands(base_url, str(tmp_path / "lib")):
        assert main(argv) == 0
    capsys.readouterr()
    assert "pandas" in sys.modules

    without, with_pandas = curated(tmp_path / "cmd"), curated(tmp_path / "lib")
    assert any(k.startswith("curated/candles/") for k in without)
    assert any(k.startswith("curated/orders/") for k in without)
    assert sum(len(rows) for k, rows in without.items() if "candles" in k) == 120
    assert without == with_pandas


def test_a_library_caller_keeps_pandas(tmp_path) -> None:
    """main(argv) is how tests and callers embed the CLI: their process is not changed."""
    code = """
        import sys
        from binance_lake.cli import main
        main(["transform", "--lake", sys.argv[1]])
        import pandas, pyarrow as pa
        print(pa.array(pandas.Series(["a", None], dtype="category")).type)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "lake")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dictionary<values=string" in proc.stdout
