"""Settings a user would otherwise retype on every command: ``binance-lake.toml``.

Five keys (``lake``, ``symbols``, ``intervals``, ``base_url``, ``workers``), each resolved
flag > environment variable > config file > default, and each remembers where its value came
from so ``binance-lake config`` can say it. The model is dlt's config providers (CLI args, env,
``config.toml``, defaults, searched in that order: https://dlthub.com/docs/general-usage/credentials/setup).

The file is ``./binance-lake.toml`` (the working directory) or the one ``--config`` names.
Unknown keys and wrong types are errors naming the key (exit 2): a typo must not silently fall
back to the default. TOML is read with the standard library's ``tomllib`` (Python 3.11+,
https://docs.python.org/3/library/tomllib.html).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from binance_lake.errors import BadInputError

FILE_NAME = "binance-lake.toml"


@dataclass(frozen=True)
class Key:
    """One setting: its flag, its environment variable, its type and default."""

    name: str
    flag: str
    env: str
    kind: type  # str, int or list (of str)
    default: Any
    help: str


KEYS: Tuple[Key, ...] = (
    Key("lake", "--lake", "BINANCE_LAKE", str, "./lake", "lake directory or s3://bucket/prefix"),
    Key("symbols", "--symbol", "BINANCE_SYMBOLS", list, [], "symbols, e.g. [\"BTCUSDT\", \"ETHUSDT\"]"),
    Key("intervals", "--interval", "BINANCE_INTERVALS", list, ["1m"], "candle intervals, e.g. [\"1m\", \"1h\"]"),
    Key("base_url", "--base-url", "BINANCE_BASE_URL", str, "https://api.binance.com",
        "Binance REST base URL (https://api.binance.us for Binance.US)"),
    Key("workers", "--workers", "BINANCE_WORKERS", int, 8, "concurrent requests"),
)
KEYS_BY_NAME: Dict[str, Key] = {k.name: k for k in KEYS}
DEFAULTS: Dict[str, Any] = {k.name: k.default for k in KEYS}


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "--lake", "env BINANCE_LAKE", "binance-lake.toml", "default"


def split_list(text: str, what: str) -> List[str]:
    """``BTCUSDT,ETHUSDT`` -> two names; an empty element is an error, not a silent skip."""
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise BadInputError(f"{what} {text!r} has an empty name; separate names with commas, e.g. BTCUSDT,ETHUSDT")
    return names


def find_file(explicit: Optional[str], cwd: Optional[str] = None) -> Optional[str]:
    """The file ``--config`` names (it must exist), else ``./binance-lake.toml`` if present."""
    if explicit:
        if not os.path.isfile(explicit):
            raise BadInputError(f"--config {explicit}: no such file")
        return explicit
    path = os.path.join(cwd or os.getcwd(), FILE_NAME)
    return path if os.path.isfile(path) else None


def read_file(path: str) -> Dict[str, Any]:
    """The file's settings, checked: unknown keys and wrong types name the key."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror}") from None
    for name, value in data.items():
        key = KEYS_BY_NAME.get(name)
        if key is None:
            raise BadInputError(f"{path}: unknown key {name!r}; known keys: {', '.join(KEYS_BY_NAME)}")
        data[name] = _checked(key, value, path)
    return data


def _checked(key: Key, value: Any, path: str) -> Any:
    if key.kind is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise BadInputError(f"{path}: {key.name} must be a list of strings, e.g. {key.name} = "
                                f"{_example(key)}; got {value!r}")
        return value
    # bool is an int subclass in Python; `workers = true` is a mistake, not 1.
    if not isinstance(value, key.kind) or isinstance(value, bool):
        raise BadInputError(f"{path}: {key.name} must be {_kind_name(key.kind)}, e.g. {key.name} = "
                            f"{_example(key)}; got {value!r}")
    return value


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", list: "a list of strings"}[kind]


def _example(key: Key) -> str:
    examples = {"lake": '"./lake"', "symbols": '["BTCUSDT", "ETHUSDT"]', "intervals": '["1m", "1h"]',
                "base_url": '"https://api.binance.us"', "workers": "8"}
    return examples[key.name]


def _from_env(key: Key, env: Mapping[str, str]) -> Optional[Any]:
    text = env.get(key.env)
    if not text:
        return None
    if key.kind is list:
        return split_list(text, key.env)
    if key.kind is int:
        try:
            return int(text)
        except ValueError:
            raise BadInputError(f"{key.env}={text!r} is not an integer") from None
    return text


def resolve(flags: Mapping[str, Any], env: Optional[Mapping[str, str]] = None,
            config_path: Optional[str] = None, cwd: Optional[str] = None) -> Dict[str, Setting]:
    """Every key's effective value and its source: flag > env > file > default.

    ``flags`` maps key names to what the command line gave (None or [] = not given).
    """
    env = os.environ if env is None else env
    path = find_file(config_path, cwd)
    from_file = read_file(path) if path else {}
    file_label = os.path.basename(path) if path and not config_path else (path or FILE_NAME)
    out: Dict[str, Setting] = {}
    for key in KEYS:
        given = flags.get(key.name)
        env_value = _from_env(key, env)
        if given not in (None, []):
            out[key.name] = Setting(given, key.flag)
        elif env_value is not None:
            out[key.name] = Setting(env_value, f"env {key.env}")
        elif key.name in from_file:
            out[key.name] = Setting(from_file[key.name], file_label)
        else:
            out[key.name] = Setting(key.default, "default")
    return out
