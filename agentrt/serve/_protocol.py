"""The request bodies of the Agent Protocol subset ``agentrt serve`` speaks (pydantic).

Each body is validated before anything runs; a body that does not validate, or
asks for something this server does not do, is a :class:`RequestRefused` whose
``detail`` names the field and the value (``stream_mode[1] = 'events': ...``),
answered as a 4xx JSON ``{"detail": ..., "field": ..., "value": ...}``, never a
500. Fields the official clients always send but that change nothing here
(``stream_subgraphs``, ``feedback_keys``, ``durability``, ...) are accepted and
ignored; unknown fields are ignored too, so a newer ``langgraph_sdk`` keeps
working (docs/serving.md lists which are which).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentrt.core._errors import AgentrtError
from agentrt.core._redact import truncate_redacted

__all__ = [
    "LANGGRAPH_STREAM_MODES",
    "MAX_BODY_BYTES",
    "AssistantSearch",
    "CommandBody",
    "RequestRefused",
    "RunCreate",
    "ThreadCreate",
    "ThreadSearch",
    "parse_body",
    "shown",
]

MAX_BODY_BYTES = 4 * 1024 * 1024
"""The largest request body accepted by default (the graph input travels in it)."""
VALUE_TEXT_LIMIT = 120
"""Characters of a bad value quoted back in an error's detail."""

LANGGRAPH_STREAM_MODES = (
    "values",
    "updates",
    "custom",
    "messages",
    "tasks",
    "checkpoints",
    "debug",
)
"""The stream modes a run can ask for: LangGraph's own (``graph.astream``), streamed as
they come. ``messages-tuple`` (what ``RemoteGraph`` asks for) is ``messages``."""
_MODE_ALIASES = {"messages-tuple": "messages"}

ModelT = TypeVar("ModelT", bound=BaseModel)


class RequestRefused(AgentrtError):
    """The server refuses a request: the HTTP status, a detail naming what is wrong,
    and the field and value at fault (when one is); ``headers`` go on the response
    (``Retry-After`` on a 503)."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        field: str | None = None,
        value: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.field = field
        self.value = value
        self.headers = dict(headers or {})
        super().__init__(detail)

    @property
    def detail(self) -> str:
        return str(self)

    def body(self) -> dict[str, Any]:
        """The JSON body of the refusal."""
        out: dict[str, Any] = {"detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
            out["value"] = _quoted(self.value)
        return out


def _quoted(value: object) -> object:
    """A bad value as the JSON body quotes it back: a short scalar as it is, else cut text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str) and len(value) <= VALUE_TEXT_LIMIT:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return shown(value)


def shown(value: object) -> str:
    """A bad value as a detail quotes it: its ``repr``, redacted and cut."""
    return truncate_redacted(repr(value), VALUE_TEXT_LIMIT)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CommandBody(_Body):
    """A LangGraph ``Command`` for a thread run: resume an interrupt, update the
    state, go to nodes (by name)."""

    resume: Any = None
    update: dict[str, Any] | list[tuple[str, Any]] | None = None
    goto: str | list[str] | None = None


class RunCreate(_Body):
    """``POST /runs``, ``/runs/wait``, ``/runs/stream`` and their ``/threads/{id}/`` twins."""

    assistant_id: str = Field(min_length=1, max_length=256)
    input: Any = None
    command: CommandBody | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: str | list[str] = "values"
    stream_subgraphs: bool = False
    stream_resumable: Literal[False] = False
    if_not_exists: Literal["create", "reject"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    multitask_strategy: Literal["reject"] | None = None
    checkpoint_id: str | None = None
    interrupt_before: None = None
    interrupt_after: None = None
    webhook: None = None
    after_seconds: Literal[0] | None = None
    on_completion: Literal["delete", "keep"] | None = None

    @field_validator("stream_mode")
    @classmethod
    def _known_modes(cls, value: str | list[str]) -> str | list[str]:
        modes = [value] if isinstance(value, str) else value
        for mode in modes:
            if _MODE_ALIASES.get(mode, mode) not in LANGGRAPH_STREAM_MODES:
                known = [*LANGGRAPH_STREAM_MODES, *_MODE_ALIASES]
                raise ValueError(f"unknown stream mode {mode!r}; this server streams {known}")
        return value

    @property
    def stream_modes(self) -> tuple[str, ...]:
        """The LangGraph stream modes asked for, each once, in order."""
        modes = [self.stream_mode] if isinstance(self.stream_mode, str) else self.stream_mode
        return tuple(dict.fromkeys(_MODE_ALIASES.get(m, m) for m in modes))

    @property
    def configurable(self) -> dict[str, Any]:
        raw = (self.config or {}).get("configurable")
        return dict(raw) if isinstance(raw, dict) else {}


class ThreadCreate(_Body):
    """``POST /threads``."""

    thread_id: str | None = Field(default=None, min_length=1, max_length=256)
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None


class ThreadSearch(_Body):
    """``POST /threads/search``: filter on metadata and status, page by limit/offset."""

    metadata: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    ids: list[str] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class AssistantSearch(_Body):
    """``POST /assistants/search``: filter on graph id, name and metadata."""

    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


def parse_body(schema: type[ModelT], raw: bytes, *, allow_empty: bool = False) -> ModelT:
    """``raw`` (a JSON request body) validated as ``schema``; a :class:`RequestRefused`
    (422, or 400 for what is not JSON) naming the first bad field and its value."""
    if not raw.strip():
        if allow_empty:
            return schema.model_validate({})
        raise RequestRefused(400, "the request body is empty; send a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            why = f" ({exc.msg} at byte {exc.pos})"
        else:
            why = f" ({exc})" if isinstance(exc, ValueError) else " (nested too deeply)"
        raise RequestRefused(400, f"the request body is not valid JSON{why}") from None
    if not isinstance(data, dict):
        raise RequestRefused(
            422, f"the request body must be a JSON object, got {type(data).__name__}"
        )
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc) from None


def _refusal(exc: ValidationError) -> RequestRefused:
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = _field(first["loc"])
    value = first.get("input")
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] in ("none_required", "literal_error") and field in _UNSUPPORTED:
        message = f"not supported by agentrt serve ({_UNSUPPORTED[field]})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first["type"] == "missing":
        return RequestRefused(422, f"{field}: {message}{more}", field=field)
    return RequestRefused(
        422, f"{field} = {shown(value)}: {message}{more}", field=field, value=value
    )


_UNSUPPORTED = {
    "interrupt_before": "interrupt inside the graph with langgraph.types.interrupt()",
    "interrupt_after": "interrupt inside the graph with langgraph.types.interrupt()",
    "webhook": "no webhooks",
    "after_seconds": "runs start at once",
    "stream_resumable": "a stream is not replayed after a disconnect",
    "multitask_strategy": "a busy thread refuses a second run (409)",
}


def _field(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a dotted field (``stream_mode[1]``), without the
    tags pydantic puts in for the members of a union (``str``, ``list[str]``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out and (part in _UNION_TAGS or "[" in part):
            continue
        else:
            out += f".{part}" if out else part
    return out or "<body>"


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "tuple", "none"})
