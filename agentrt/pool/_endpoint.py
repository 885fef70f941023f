"""What an endpoint is: its configuration (validated at the edge) and its live state.

Validation never echoes a secret: a URL carrying credentials
(``https://user:key@host``) is refused with the URL shown redacted and a pointer
to ``api_key``, every URL a message quotes is redacted, and pydantic's own error
text leaves the input out (``hide_input_in_errors``), so ``str()`` of a
``ValidationError`` holds no key either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from agentrt.core._redact import redact, register_secret, truncate_redacted

__all__ = [
    "PLAIN_GROUP",
    "SPEC_GROUP",
    "EndpointSpec",
    "EndpointState",
    "GroupName",
    "ToolCalling",
    "greedy_only_groups",
]

GroupName = str
"""A server group: ``"plain"``, ``"spec"`` (speculative decoding), or your own."""

PLAIN_GROUP: GroupName = "plain"
SPEC_GROUP: GroupName = "spec"
"""The two groups the local pool starts: plain decoding and speculative decoding."""

ToolCalling = Literal["native", "constrained", "none"]
"""How tool calls and structured output reach an endpoint (``EndpointSpec.tool_calling``)."""


class EndpointSpec(BaseModel):
    """One OpenAI-compatible server, as configured.

    ``url`` is the server root (``http://host:8000``; a trailing ``/v1`` is
    accepted and dropped). ``model`` is the served model name; left empty, the
    pool asks ``/v1/models`` and takes the first one. ``speculative`` records
    the server's ``--speculative-config`` when it has one. ``greedy_only``
    marks a server whose sampled output (temperature > 0) is wrong: vLLM's CPU
    build with speculative decoding (vllm-project/vllm#55005, docs/deployment.md);
    the planner sends it greedy single-branch calls only.

    ``tool_calling`` says how tool calls and structured output reach the server:

    - ``"native"``: the server parses tool calls itself (vLLM's
      ``--enable-auto-tool-choice --tool-call-parser ...``): ``tools`` and
      ``tool_choice`` pass through and calls stream back as ``delta.tool_calls``.
      The local pool's servers are started this way.
    - ``"constrained"`` (the default): the server has structured outputs
      (``response_format`` with a JSON schema) but no tool parser; agentrt
      describes the tools in the prompt and constrains the reply to a call's
      schema. Every vLLM server has structured outputs.
    - ``"none"``: neither; tools are described in the prompt only, and the
      reply is parsed as it comes.

    ``deadline_priority`` sends each request's deadline as vLLM's ``priority``
    (:meth:`agentrt.Deadline.priority`: earliest deadline first). Only for
    servers started with ``--scheduling-policy priority`` (the local pool's
    are); other servers reject a non-zero priority, so it is off by default.
    Every request carries the time it may take in the ``agentrt-timeout``
    header either way.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str
    group: GroupName = PLAIN_GROUP
    model: str | None = None
    api_key: SecretStr | None = None
    speculative: dict[str, Any] | None = None
    verify_tls: bool = True
    greedy_only: bool = False
    tool_calling: ToolCalling = "constrained"
    deadline_priority: bool = False

    def model_post_init(self, context: Any, /) -> None:
        # A key this process was configured with is blanked in all its output.
        if self.api_key is not None:
            register_secret(self.api_key.get_secret_value())

    @property
    def draft_tokens(self) -> int | None:
        """Speculative tokens per step (``num_speculative_tokens``), on a
        speculative-decoding endpoint; None on a plain one."""
        if not self.speculative:
            return None
        draft = self.speculative.get("num_speculative_tokens")
        return int(draft) if draft else None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        shown = _shown_url(value)  # every message below quotes the URL without secrets
        if "@" in parts.netloc:
            raise ValueError(
                f"url must not carry credentials (user:key@): {shown!r}; "
                "put the key in api_key (api_key_env or api_key_file in an endpoints file)"
            )
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"url must start with http:// or https://, got {shown!r}")
        if not parts.hostname:
            raise ValueError(f"url has no host: {shown!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"url has an invalid port: {shown!r}") from None
        if port == 0:
            raise ValueError(f"url has an invalid port: {shown!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"url must not have a query or fragment: {shown!r}")
        path = parts.path.rstrip("/")
        if path.endswith("/v1"):
            path = path[: -len("/v1")]
        return f"{parts.scheme}://{parts.netloc}{path}"

    @field_validator("group")
    @classmethod
    def _check_group(cls, value: str) -> str:
        if not value or not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError(
                f"group must be a non-empty name of letters, digits, - or _: {value!r}"
            )
        return value

    @field_validator("tool_calling", mode="before")
    @classmethod
    def _check_tool_calling(cls, value: object) -> object:
        if value not in get_args(ToolCalling):
            raise ValueError(
                f"tool_calling must be one of {list(get_args(ToolCalling))},"
                f" got {truncate_redacted(repr(value), 80)}"
            )
        return value

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` for tracing's ``server.address`` / ``server.port``."""
        parts = urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        return parts.hostname or "", parts.port or default


def _shown_url(value: str) -> str:
    """``value`` fit to quote: any user-info blanked (a lone ``key@`` too, which
    :func:`redact` leaves), then redacted."""
    parts = urlsplit(value.strip())
    if "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        value = urlunsplit(parts._replace(netloc=f"***@{host}"))
    return redact(value)


def greedy_only_groups(specs: Iterable[EndpointSpec]) -> tuple[GroupName, ...]:
    """Groups with a greedy-only endpoint: the pool may route any call of a group to
    any of its endpoints, so one such endpoint makes the whole group greedy-only."""
    return tuple(sorted({s.group for s in specs if s.greedy_only}))


@dataclass
class EndpointState:
    """What the pool knows about one endpoint right now (mutated by the pool only)."""

    spec: EndpointSpec
    served_model: str | None = None
    version: str | None = None
    in_flight: int = 0
    server_running: float = 0.0
    server_waiting: float = 0.0
    ejected_until: float = -math.inf
    consecutive_failures: int = 0
    last_error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.spec.url

    def healthy(self, now: float) -> bool:
        return now >= self.ejected_until

    @property
    def load(self) -> float:
        """Routing load: requests we have open here plus what the server reports queued.

        The server's ``running`` already counts our own requests, so take the larger
        of the two views, then add the server's waiting queue.
        """
        return max(float(self.in_flight), self.server_running) + self.server_waiting
