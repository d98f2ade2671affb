"""docs/cli.md is the parser's --help, every command, interval, setting and exit code."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from binance_lake.cli import build_parser, main
from binance_lake.config import KEYS
from binance_lake.times import INTERVAL_MS

REPO = Path(__file__).resolve().parents[1]
gen = runpy.run_path(str(REPO / "scripts" / "gen_cli_docs.py"))


def test_cli_md_is_current():
    """Fails when a flag or command changes without `python scripts/gen_cli_docs.py`."""
    assert (REPO / "docs" / "cli.md").read_text() == gen["render"](), "run: python scripts/gen_cli_docs.py"


def _blocks() -> dict:
    text = (REPO / "docs" / "cli.md").read_text()
    return dict(re.findall(r"^## `(binance-lake[^`]*)`\n\n```text\n(.*?)\n```", text, re.M | re.S))


# Every command of the parser (a new one is covered without editing this file).
COMMANDS = [("binance-lake",)] + [tuple(name.split()[1:])
                                  for name, _ in gen["_subcommands"](build_parser(), "binance-lake")]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_each_command_help_is_in_the_doc(command, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", gen["WIDTH"])
    argv = [] if command == ("binance-lake",) else list(command)
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    title = "binance-lake" + "".join(f" {c}" for c in argv)
    assert _blocks()[title] == capsys.readouterr().out.rstrip()


def test_doc_lists_every_command_interval_setting_and_exit_code():
    text = (REPO / "docs" / "cli.md").read_text()
    assert len(_blocks()) == len(COMMANDS) >= 16  # every command has its section
    assert all(f"`{i}`" in text for i in INTERVAL_MS)
    assert all(f"| `{k.name}` | `{k.flag}` | `{k.env}` |" in text for k in KEYS)
    for code in (0, 2, 3, 4, 5, 6, 130):
        assert re.search(rf"^\| {code} \| ", text, re.M), code
