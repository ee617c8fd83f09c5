"""Secrets out of text: every URL and DSN form the settings accept, made fit for output, logs and
Redis. ``redact_url`` takes one URL (``redis://:pw@host/0``, ``rediss://``, ``postgresql://user:pw@
host/db?sslpassword=x``, ``http://host/v1?api_key=x``); ``redact_dsn`` one PostgreSQL key/value DSN
(``host=h password=pw``, also ``password='p w'``); ``redact_text`` any text that may hold either
(an exception's message, a traceback), the form every error path writes."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query and DSN keys whose value is a credential (matched as substrings, case-insensitive).
SECRET_KEYS = ("key", "token", "secret", "password", "passwd", "pass", "pwd", "auth", "sig")

# scheme://[userinfo@]rest, up to whitespace or a quote/bracket that ends the URL in prose.
_URL = re.compile(r"""(?i)\b[a-z][a-z0-9+.\-]*://[^\s'"<>]*""")
# userinfo in a URL the parser did not take (e.g. inside a longer token).
_USERINFO = re.compile(r"""(?i)(\b[a-z][a-z0-9+.\-]*://)[^\s/@'"<>]*@""")
# key=value pairs of a DSN or query: the value single-quoted (with \' escapes), double-quoted, or
# bare (up to whitespace, '&', ';' or ',').
_PAIR = re.compile(
    r"""(?ix)
    (?P<key>\b[a-z_][a-z0-9_\-]*)
    (?P<eq>\s*[=:]\s*)
    (?P<value>'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s&;,'"]+)
    """
)


# In free text, a key is a credential's when one of its words (split at '_' and '-') is one of these.
SECRET_WORDS = frozenset(
    {"password", "passwd", "pass", "pwd", "secret", "token", "key", "apikey", "auth", "sig"}
    | {"signature", "sslpassword", "credential", "credentials", "authorization"}
)


def _secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(s in lowered for s in SECRET_KEYS)


def _secret_word(key: str) -> bool:
    return any(word in SECRET_WORDS for word in re.split(r"[_\-]", key.lower()))


def redact_url(url: str) -> str:
    """A URL fit for output and logs: the password (and user) in it and any query value that
    looks like a credential replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_secret_key(k) for k, _ in pairs):
                query = urlencode([(k, MASK if _secret_key(k) else v) for k, v in pairs], safe="*")
        fragment = redact_dsn(parts.fragment) if parts.fragment else ""
        if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
            return url  # nothing secret: as given (urlunsplit would drop an empty '//')
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        return "<unparseable URL>"


def redact_dsn(dsn: str, *, words: bool = False) -> str:
    """A key/value DSN (``host=h user=u password=pw``) with each credential's value ``***``
    (quoted values included); text without such pairs is returned unchanged. ``words``: a key is
    a credential's by its words (for prose, where ``passed=3`` is no password)."""
    secret = _secret_word if words else _secret_key

    def swap(match: re.Match[str]) -> str:
        if not secret(match["key"]):
            return match[0]
        return f"{match['key']}{match['eq']}{MASK}"

    return _PAIR.sub(swap, dsn)


def redact(value: str) -> str:
    """One setting's value (a URL or a DSN) fit for output."""
    if "://" in value:
        return redact_url(value)
    return redact_dsn(value)


def redact_text(text: str) -> str:
    """Any text (an error message, a traceback, a log line) with every URL's credentials and
    every credential-looking ``key=value`` replaced by ``***``."""
    if not text:
        return text
    out = _URL.sub(lambda m: redact_url(m[0]), text)
    out = _USERINFO.sub(lambda m: f"{m[1]}{MASK}@", out)
    return redact_dsn(out, words=True)
