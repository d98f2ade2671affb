"""The one rule for URLs the lake stores or prints: no credentials in them.

A base URL is written into raw envelopes and archive sidecars (immutable; on S3 in cloud
mode) and into warnings and errors, so a ``user:password@`` part or a query string (a place
for ``?apikey=``) would be kept forever. Such URLs are refused before anything is written or
logged, and the refusal never repeats the URL: it may hold the password.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from binance_lake.errors import BadInputError


def check_no_credentials(url: str, flag: str) -> SplitResult:
    """The URL's parts, or :class:`BadInputError` if it carries userinfo, a query or a fragment."""
    try:
        parts = urlsplit(url)
        userinfo = "@" in parts.netloc or parts.username is not None or parts.password is not None
    except ValueError:  # e.g. an unclosed '[' in an IPv6 host
        raise BadInputError(f"{flag} is not a valid URL") from None
    if userinfo:
        raise BadInputError(
            f"{flag} must not contain credentials (a 'user:password@' part): the URL is stored with the "
            "data and shown in messages. Remove it; Binance authenticates with BINANCE_API_KEY and "
            "BINANCE_API_SECRET")
    if parts.query or parts.fragment:
        raise BadInputError(f"{flag} must not have a query string or fragment ('?...', '#...'); give only "
                            "scheme, host and an optional path")
    return parts


def shown(url: str) -> str:
    """``url`` quoted for a message, or nothing if it might hold a password."""
    return "" if "@" in url else f" {url!r}"
