"""The tracing layer's one error: a trace file that cannot be read.

It is a :class:`~agentrt.core._errors.ConfigurationError` (bad input: fix the
file), so the CLI reports it as one line like any other input mistake::

    ConfigurationError
    └── TraceFileError        names the file and the line (when one is to blame)
"""

from __future__ import annotations

from pathlib import Path

from agentrt.core._errors import ConfigurationError

__all__ = ["TraceFileError"]


class TraceFileError(ConfigurationError):
    """A trace file is missing, unreadable or malformed.

    ``path`` is the file and ``line`` the 1-based line to blame (``None`` when
    the whole file is), and the message starts with ``path:line:``.
    """

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}")
