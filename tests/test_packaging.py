"""What we say about the package is what the built wheel says; the local CLI runs without boto3."""

from __future__ import annotations

import email
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import binance_lake
from binance_lake.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_metadata(tmp_path_factory) -> email.message.Message:
    """Build the wheel offline (no build isolation: the pinned setuptools of requirements-dev.txt)
    from a copy of the sources, so no build/ or egg-info lands in the checkout."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "binance_lake", src / "binance_lake", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [whl] = out.glob("binance_lake-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        meta = email.message_from_bytes(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    meta["X-Files"] = " ".join(names)
    meta["X-Entry-Points"] = entry_points.replace("\n", " ")
    return meta


def test_wheel_metadata_is_what_we_say(wheel_metadata):
    m = wheel_metadata
    assert m["Name"] == "binance-lake" and m["Version"] == binance_lake.__version__
    assert m["Requires-Python"] == ">=3.11"
    assert m["License-Expression"] == "Apache-2.0"
    assert "binance_lake-" + binance_lake.__version__ + ".dist-info/licenses/LICENSE" in m["X-Files"].split()
    assert "binance-lake = binance_lake.cli:main" in m["X-Entry-Points"]
    assert {"Homepage", "Source", "Documentation", "Issues"} <= {u.split(",")[0] for u in m.get_all("Project-URL")}
    assert "Programming Language :: Python :: 3.11" in m.get_all("Classifier")
    requires = m.get_all("Requires-Dist")
    core = {re.split(r"[<>=; ]", r)[0] for r in requires if "extra ==" not in r}
    assert core == {"python-binance", "requests", "pyarrow", "duckdb", "tqdm"}  # no boto3 for local use
    extras = {r.split("extra == ")[1].strip('"'): re.split(r"[<>=; ]", r)[0] for r in requires if "extra ==" in r}
    assert extras == {"aws": "boto3", "pandas": "pandas", "polars": "polars"}
    assert set(m.get_all("Provides-Extra")) == {"aws", "pandas", "polars"}


def test_requires_python_matches_ruff_target():
    text = (REPO / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.11"' in text and 'target-version = "py311"' in text


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"binance-lake {binance_lake.__version__}"


# Runs the CLI in a fresh interpreter where importing boto3 or botocore fails, as on an install
# without the [aws] extra.
NO_BOTO = """
import importlib.abc, sys
class NoBoto(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("boto3", "botocore", "s3transfer"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoBoto())
from binance_lake.cli import main
code = main(sys.argv[1:])
assert not [m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore")]
sys.exit(code)
"""


def _no_boto(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_BOTO, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})


def test_local_cli_works_without_boto3(tmp_path):
    lake = str(tmp_path / "lake")
    steps = [
        ("sync", "candles", "--symbol", "BTCUSDT", "--emulator", "--start", "2024-03-01",
         "--end", "2024-03-01T01:00:00Z"),
        ("status",),
        ("query", "SELECT count(*) AS n FROM candles"),
        ("export", "candles", "--symbol", "BTCUSDT", "--output", str(tmp_path / "c.csv")),
        ("verify", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", "2024-03-02"),
        ("transform",),
    ]
    for step in steps:
        proc = _no_boto(*step, "--lake", lake, cwd=tmp_path)
        assert proc.returncode == 0, (step, proc.stdout, proc.stderr)
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 61


def test_s3_lake_without_boto3_names_the_extra(tmp_path):
    proc = _no_boto("status", "--lake", "s3://some-bucket/lake", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'binance-lake[aws]'" in proc.stderr and "Traceback" not in proc.stderr
