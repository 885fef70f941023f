"""agentrt's one named stdlib logger, silent by default.

Everything agentrt drops on purpose (a cut graph's unwinding error, a health
check that failed, a span the JSONL exporter could not write) is logged here
at DEBUG or WARNING, redacted. Nothing is printed unless the application
configures logging: ``logging.getLogger("agentrt").setLevel(logging.DEBUG)``
plus a handler, or ``logging.basicConfig(level=logging.DEBUG)``.
"""

from __future__ import annotations

import logging

from agentrt.core._redact import redact

__all__ = ["LOGGER_NAME", "log_dropped", "logger"]

LOGGER_NAME = "agentrt"

logger = logging.getLogger(LOGGER_NAME)
logger.addHandler(logging.NullHandler())


def log_dropped(what: str, error: BaseException | str, *, level: int = logging.WARNING) -> None:
    """Record an error agentrt handles by dropping it: ``what`` says where."""
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    logger.log(level, "%s: %s", what, redact(str(detail)))
