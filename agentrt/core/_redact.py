"""One redaction for everything that can carry server or configuration text.

:func:`redact` is applied to error messages, span attributes, trace files,
log records and status output *before* any truncation, so a secret cut in
half cannot leak its first half. It blanks:

- every secret registered with :func:`register_secret` (the API keys of the
  endpoints this process was configured with, the local pool's key);
- ``Authorization``/``Bearer``/``api_key=``/``password=`` values and
  ``sk-...``-style tokens, whoever sent them;
- credentials in URLs (``https://user:key@host`` becomes ``https://***@host``).

The registry is process-wide, as a logging configuration is: a key known to
any part of the process is blanked in all of its output.
"""

from __future__ import annotations

import re
import threading

__all__ = ["REDACTED", "redact", "register_secret", "truncate_redacted"]

REDACTED = "**********"

_MIN_SECRET_LEN = 4  # shorter values would blank ordinary words
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_PATTERN: re.Pattern[str] | None = None

_GENERIC = re.compile(
    r"(?P<url>(?<=://)[^/\s:@\"'<>]*:[^/\s@\"'<>]*@)"
    r"|(?P<bearer>(?i:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{4,}"
    r"|(?P<kv>(?i:api[_-]?key|apikey|access[_-]?token|token|password|secret|authorization)"
    r"[\"']?\s*[:=]\s*[\"']?)(?:(?i:bearer|basic)\s+)?[^\s\"',;}&]{4,}"
    r"|(?P<token>\b(?:sk|pk|rk|hf|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{8,})"
)


def register_secret(value: str | None) -> None:
    """Blank ``value`` in everything :func:`redact` sees from now on."""
    global _PATTERN
    if value is None or len(value) < _MIN_SECRET_LEN:
        return
    with _LOCK:
        if value in _SECRETS:
            return
        _SECRETS.add(value)
        # Longest first, so a key that contains another is blanked whole.
        ordered = sorted(_SECRETS, key=len, reverse=True)
        _PATTERN = re.compile("|".join(re.escape(s) for s in ordered))


def _generic(match: re.Match[str]) -> str:
    if match.group("url") is not None:
        return "***@"
    for prefix in ("bearer", "kv"):
        if match.group(prefix) is not None:
            return match.group(prefix) + REDACTED
    return REDACTED


def redact(text: str) -> str:
    """``text`` with every known secret and every credential-shaped value blanked."""
    if not text:
        return text
    pattern = _PATTERN
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _GENERIC.sub(_generic, text)


def truncate_redacted(text: str, limit: int) -> str:
    """Redact first, then cut to ``limit`` characters (marked with an ellipsis)."""
    clean = redact(text)
    return clean if len(clean) <= limit else clean[: max(0, limit - 1)] + "…"
