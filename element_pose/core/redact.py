"""Keep secrets out of logs and messages: credentials inside URLs.

One helper for every place the library logs or reports a URL: :func:`redact_url`
replaces the user-info part of any URL in a text (``https://user:key@host/api`` ->
``https://***@host/api``) and the values of query parameters that carry secrets
(``token``, ``key``, ``signature``, ...). :func:`split_credentials` takes the
credentials out of a URL before it is handed to a client library, so that the
library cannot log them either.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_url", "split_credentials"]

REDACTED = "***"
# scheme://userinfo@  (userinfo: anything up to the last "@" before the host's path)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&](?:[\w-]*(?:token|key|secret|password|passwd|signature|credential)"
    r"[\w-]*))=(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE,
)


def redact_url(text: object) -> str:
    """``text`` (a URL, or any message holding URLs) with credentials replaced by ``***``.

    Args:
        text: A URL or a message; non-strings are converted with ``str``.

    Returns:
        The text with every URL's user-info and secret query values redacted.
    """
    text = str(text)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['name']}={REDACTED}", text)


def split_credentials(url: str) -> tuple[str, str | None]:
    """``(url without user-info, the secret it held or None)``.

    The secret is the password part (``user:key@``) or, without a password, the
    user part (``key@``).
    """
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    secret = unquote(password if sep else user) or None
    return urlunsplit(parts._replace(netloc=host)), secret
