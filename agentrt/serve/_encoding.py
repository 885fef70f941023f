"""Graph values on the wire: JSON for bodies, Server-Sent Events for streams.

Graph state holds more than JSON: LangChain messages (pydantic models, sent as
their ``model_dump()``, the form ``langgraph_sdk`` and ``RemoteGraph`` read back),
dataclasses (LangGraph's ``Interrupt``), tuples and sets (lists), datetimes (ISO
text). A float that is not finite becomes ``null`` (JSON has no NaN); anything
else is sent as its ``repr``, so a response is always valid JSON.

An SSE event is ``event: NAME`` and one ``data:`` line of JSON, then a blank line,
which is what ``langgraph_sdk``'s decoder reads.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["dumps", "jsonable", "sse_event"]

MAX_DEPTH = 200
"""Nesting past this is sent as text: a state is not that deep, a cycle is."""


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers, booleans, null)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if _depth > MAX_DEPTH:
        return repr(value)
    depth = _depth + 1
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth) for v in value]
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(), depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return jsonable(fields, depth)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return repr(value)


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes (made :func:`jsonable` first)."""
    return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False).encode()


def sse_event(event: str, data: Any) -> bytes:
    """One Server-Sent Event: ``event: NAME``, its data as one line of JSON."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"
