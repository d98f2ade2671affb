"""The runtime venv helper: interpreter discovery, the CI policy, the cache key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.runtimes import venvs


def test_a_broken_shim_on_path_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pyenv shim of an inactive version is on PATH but fails to run: look further (pyenv's versions).
    shim = tmp_path / "bin" / "python3.13"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    found = venvs.find_python("3.13")
    if found is None:
        pytest.skip("no Python 3.13 on this machine (the CI policy test below still runs)")
    assert Path(found[0]) != shim and found[1].startswith("3.13.")


def test_missing_interpreter_fails_on_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(venvs, "find_python", lambda minor: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no Python 3\.13 interpreter.*pyenv install 3\.13"):
        venvs.require_python("3.13")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"pyenv install 3\.13"):
        venvs.require_python("3.13")


def test_cache_key_follows_the_requirements_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Single source: the key is the file's content, so a bumped pin builds (and tests) a new venv.
    monkeypatch.setattr(venvs, "REPO", tmp_path)
    (tmp_path / "req.txt").write_text("boto3==1.44.8\n")
    spec = venvs.RuntimeSpec("x", "3.13", (venvs.Step("req.txt"),))
    before = venvs._key(spec, "3.13.0")
    (tmp_path / "req.txt").write_text("boto3==1.34.131\n")
    assert venvs._key(spec, "3.13.0") != before
    assert venvs._key(spec, "3.13.1") != venvs._key(spec, "3.13.0")  # another interpreter, another venv
    assert venvs.pins("req.txt") == {"boto3": "1.34.131"}
