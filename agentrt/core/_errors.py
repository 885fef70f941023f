"""The one error tree of agentrt.

Configuration mistakes (yours, fix the input) stand apart from run failures
(something went wrong while running; the run may degrade instead of failing)::

    AgentrtError
    ├── ConfigurationError            bad input: names the source, field and value
    │   ├── EndpointConfigError       malformed URL, unknown group, bad TOML/env
    │   ├── ProfileError              a budget profile that does not validate (file, field, value)
    │   ├── ModelNotServed            the endpoint does not serve the requested model
    │   ├── ModelNotPreparedError     local model package missing or conversion failed
    │   └── TraceFileError            a trace file that cannot be read (file, line, problem;
    │                                 agentrt.tracing)
    └── RunError                      failures while running
        ├── DeadlineExceeded          scope, deadline, elapsed; never retried
        ├── BudgetRefused             a call whose minimum latency exceeds its slice
        ├── TokenCapReached           the run's token cap is spent; no call may start
        ├── PoolError
        │   ├── NoHealthyEndpoint     every endpoint of the group is ejected or absent
        │   ├── EndpointError         one endpoint failed (carries its URL)
        │   │   ├── EndpointUnavailable   connection failure, 503, reset: retryable
        │   │   ├── EndpointRejected      4xx: bad request, unknown model; not retried
        │   │   └── ProtocolError         a body that is not OpenAI-compatible
        ├── LocalPoolError            the embedded local vLLM pool failed to start/stop
        └── RunFailed                 a run that ended short, raised on request (on_error or
            │                         on_expiry = "raise"); .result holds all it had
            └── RunDeadlineExceeded   (also a DeadlineExceeded; agentrt.langgraph)

Low-level errors (httpx, json) are mapped at the boundary with
``raise Specific(...) from exc``. Every message is redacted once, at the root
(:class:`AgentrtError`), before anything can cut it.
"""

from __future__ import annotations

from agentrt.core._redact import redact

__all__ = [
    "AgentrtError",
    "BudgetRefused",
    "ConfigurationError",
    "DeadlineExceeded",
    "EndpointConfigError",
    "EndpointError",
    "EndpointRejected",
    "EndpointUnavailable",
    "LocalPoolError",
    "ModelNotPreparedError",
    "ModelNotServed",
    "NoHealthyEndpoint",
    "PoolError",
    "ProfileError",
    "ProtocolError",
    "RunError",
    "TokenCapReached",
]


class AgentrtError(Exception):
    """Base of every error agentrt raises on purpose.

    Its message is redacted (:func:`agentrt.core._redact.redact`) once, here,
    before anything can cut it: keys a server echoed, URL credentials and
    credential-shaped values never reach ``str(error)``, spans or logs.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class ConfigurationError(AgentrtError, ValueError):
    """The caller's input is wrong; the message names what and where."""


class EndpointConfigError(ConfigurationError):
    """An endpoint definition (env, TOML, argument) is malformed."""


class ProfileError(ConfigurationError):
    """A budget profile failed to load or validate.

    ``path`` is the file (or other source), ``field`` the dotted field and
    ``value`` the bad value, when known; the message says all three.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        field: str | None = None,
        value: object = None,
    ) -> None:
        self.path = path
        self.field = field
        self.value = value
        super().__init__(message)


class ModelNotPreparedError(ConfigurationError):
    """The local model cannot be prepared (package missing, conversion failed)."""


class RunError(AgentrtError):
    """Something failed while running a call or a graph."""


class DeadlineExceeded(RunError):
    """A deadline passed before the work finished. Never retried.

    ``scope`` names what ran out of time (``"run"``, ``"call"``, ``"retry"``...),
    ``deadline_s`` is the budget it had, ``elapsed_s`` how long it actually took.
    """

    def __init__(self, scope: str, deadline_s: float, elapsed_s: float) -> None:
        self.scope = scope
        self.deadline_s = deadline_s
        self.elapsed_s = elapsed_s
        super().__init__(
            f"deadline exceeded in {scope}: budget {deadline_s:.3f}s, elapsed {elapsed_s:.3f}s"
        )


class BudgetRefused(RunError):
    """A call was refused before it started: its predicted minimum latency
    does not fit the slice it was given."""

    def __init__(self, what: str, slice_s: float, minimum_s: float) -> None:
        self.what = what
        self.slice_s = slice_s
        self.minimum_s = minimum_s
        super().__init__(
            f"{what} refused: needs at least {minimum_s:.3f}s, slice is {slice_s:.3f}s"
        )


class TokenCapReached(RunError):
    """The run's token cap is spent: no further call may start."""

    def __init__(self, cap: int, used: int) -> None:
        self.cap = cap
        self.used = used
        super().__init__(f"token cap reached: {used} of {cap} tokens used")


class PoolError(RunError):
    """The endpoint pool could not serve a request."""


class NoHealthyEndpoint(PoolError):
    """No healthy endpoint is left in the requested group."""

    def __init__(self, group: str, known: int) -> None:
        self.group = group
        self.known = known
        super().__init__(f"no healthy endpoint in group {group!r} ({known} known, all ejected)")


class EndpointError(PoolError):
    """One endpoint failed; ``url`` says which."""

    def __init__(self, url: str, message: str, status_code: int | None = None) -> None:
        self.url = url
        self.status_code = status_code
        super().__init__(f"{url}: {message}")


class EndpointUnavailable(EndpointError):
    """Connection refused or reset, timeout, 503: worth retrying elsewhere."""


class EndpointRejected(EndpointError):
    """The endpoint refused the request itself (4xx): retrying will not help."""


class ProtocolError(EndpointError):
    """The endpoint answered with something that is not the OpenAI API."""


class ModelNotServed(ConfigurationError):
    """The endpoint is up but does not serve the requested model."""

    def __init__(self, url: str, model: str, served: list[str]) -> None:
        self.url = url
        self.model = model
        self.served = served
        super().__init__(f"{url} does not serve model {model!r}; it serves {served}")


class LocalPoolError(RunError):
    """The embedded local vLLM pool failed to start or stop."""
