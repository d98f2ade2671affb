"""User-facing errors: each names the problem and what to do, and carries an exit code.

Messages never contain API keys, secrets or signed query strings.
"""

from __future__ import annotations

from typing import Optional

# Exit codes of the CLI (documented in the README).
EXIT_OK = 0
EXIT_BAD_INPUT = 2  # the user's input or configuration is wrong (symbol, dates, missing key)
EXIT_REJECTED = 3  # Binance refused the request (bad key, signature, clock skew, ban)
EXIT_UNAVAILABLE = 4  # Binance or the network stayed unavailable after retries
EXIT_STORAGE = 5  # the lake could not be read or written, or a stored file failed its check
EXIT_ATTENTION = 6  # done, but something needs a human: rows raw cannot explain, an unusable raw page
EXIT_INTERRUPTED = 130  # Ctrl-C: everything written so far is consistent; rerun to continue


class Rejected(Exception):
    """An input that cannot be used at all (a raw file that is not JSON, an unreadable Parquet
    partition, an archive zip that is not a kline CSV); the fold quarantines or rebuilds it."""


class LakeError(Exception):
    """Base of every expected failure; the CLI prints ``str(err)`` and exits with ``exit_code``."""

    exit_code = EXIT_BAD_INPUT


class BadInputError(LakeError):
    exit_code = EXIT_BAD_INPUT


class MissingCredentialsError(BadInputError):
    pass


class StorageError(LakeError):
    exit_code = EXIT_STORAGE


class WriteConflict(StorageError):
    """A conditional write lost the race: the key changed since this writer read it (another
    writer replaced it, or created it). Nothing was overwritten; re-read, merge again, retry."""


class LeaseLost(StorageError):
    """This run's lease on a (table, symbol) was taken over while it worked (it stalled longer
    than the lease); it stops writing. Its inputs stay pending in raw; a rerun folds them."""


class DamagedFileError(StorageError):
    """A stored file failed its check on read (sha256 differs from its sidecar, or it does not
    open). Nothing was written from it; the message names the file and the command that
    restores it."""


class LockHeldError(StorageError):
    """Another run holds the (table, symbol) writer lock for longer than this run may wait."""


class BinanceError(LakeError):
    """Binance answered with an error body ``{"code": ..., "msg": ...}``."""

    exit_code = EXIT_REJECTED

    def __init__(self, message: str, code: Optional[int] = None, status: Optional[int] = None):
        super().__init__(message)
        self.code = code
        self.status = status


class UnknownSymbolError(BinanceError):
    exit_code = EXIT_BAD_INPUT


class BadIntervalError(BinanceError):
    exit_code = EXIT_BAD_INPUT


class BadApiKeyError(BinanceError):
    pass


class SignatureError(BinanceError):
    pass


class ClockSkewError(BinanceError):
    pass


class IpBannedError(BinanceError):
    pass


class GeoBlockedError(BinanceError):
    """HTTP 451: Binance refuses this location; retrying cannot help."""


class BinanceUnavailableError(BinanceError):
    """Retries were exhausted on 5xx, timeouts, connection errors or malformed replies."""

    exit_code = EXIT_UNAVAILABLE
