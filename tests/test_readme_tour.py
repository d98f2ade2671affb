"""The README's five-minute tour runs as printed, offline (--emulator), each command exit 0."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from binance_lake.cli import main
from binance_lake.config import KEYS

REPO = Path(__file__).resolve().parents[1]


def tour_commands() -> list:
    text = (REPO / "README.md").read_text()
    section = text.split("## Five-minute tour", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_tour_runs_as_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the tour's ./lake and CSV land here
    for key in KEYS:
        monkeypatch.delenv(key.env, raising=False)
    commands = tour_commands()
    assert len(commands) >= 8 and all(c[0] == ".venv/bin/binance-lake" for c in commands)
    outputs = []
    for argv in commands:
        code = main(argv[1:])
        out, err = capsys.readouterr()
        assert code == 0, (argv, out, err)
        outputs.append(out)
    assert outputs[0].splitlines()[-1].startswith("sync candles total: 4 of 4 runs done (0 failed), 2928 rows")
    assert "lake ./lake: 2928 candles" in outputs[1]
    assert len((tmp_path / "btcusdt-1h.csv").read_text().splitlines()) == 25
