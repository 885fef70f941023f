"""Decoding one parsed JSON document into spans: agentrt's flat JSONL span or
an OTLP-JSON ``ExportTraceServiceRequest``.

Every field is type-checked: a document of the wrong shape raises
:class:`Malformed` saying which field and what it got, which the reader turns
into a :class:`~agentrt.tracing._errors.TraceFileError` naming the file and line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from agentrt.tracing._run import EventRecord, SpanRecord

__all__ = ["Malformed", "NotJson", "decode"]

_OTLP_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_OTLP_KIND = {
    0: "UNSPECIFIED",
    1: "INTERNAL",
    2: "SERVER",
    3: "CLIENT",
    4: "PRODUCER",
    5: "CONSUMER",
}
_MAX_TIME_NS = 2**64  # OTLP times are fixed64


class Malformed(Exception):
    """A problem with one document, in its own terms; the reader adds file and line."""


class NotJson(Malformed):
    """The text does not parse as JSON (a line of a pretty-printed document?)."""


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "an object",
               list: "a list", bool: "a bool"}  # fmt: skip


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is of ``kind`` (a bool is not an integer here), else Malformed."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        wanted = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        raise Malformed(f"{what} must be {wanted}, got {_type_name(value)}")
    return value


def _optional(raw: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = raw.get(key)
    return None if value is None else _expect(value, kind, what)


_UINT = re.compile(r"[0-9]{1,20}")
_INT = re.compile(r"-?[0-9]{1,20}")


def _time(value: Any, what: str) -> int:
    """A Unix-nanosecond time: an integer (JSONL) or a digit string (OTLP's
    fixed64), within 0 .. 2**64."""
    if isinstance(value, str) and _UINT.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{what} must be an integer time in ns, got {_type_name(value)}")
    if not 0 <= value < _MAX_TIME_NS:
        raise Malformed(f"{what} is out of range (0 to 2**64 ns)")
    return value


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    return dict(_expect(value, dict, what))


def _items(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    return list(_expect(value, list, what))


def _objects(value: Any, what: str) -> Iterator[Mapping[str, Any]]:
    for i, item in enumerate(_items(value, what)):
        yield _expect(item, dict, f"{what}[{i}]")


def _from_flat(raw: Mapping[str, Any]) -> SpanRecord:
    status = _mapping(raw.get("status"), "status")
    span_id = _expect(raw.get("span_id"), str, "span_id")
    if not span_id:
        raise Malformed("span_id is empty")
    return SpanRecord(
        trace_id=_expect(raw.get("trace_id"), str, "trace_id"),
        span_id=span_id,
        parent_id=_optional(raw, "parent_span_id", str, "parent_span_id") or None,
        name=_optional(raw, "name", str, "name") or "",
        kind=_optional(raw, "kind", str, "kind") or "INTERNAL",
        start_ns=_time(raw.get("start_time_unix_nano"), "start_time_unix_nano"),
        end_ns=_time(raw.get("end_time_unix_nano"), "end_time_unix_nano"),
        attributes=_mapping(raw.get("attributes"), "attributes"),
        events=_events(raw, "time_unix_nano", _mapping),
        status=_optional(status, "code", str, "status.code") or "UNSET",
        status_message=_optional(status, "description", str, "status.description"),
    )


def _otlp_value(value: Any, what: str) -> Any:
    value = _mapping(value, what)
    if "stringValue" in value:
        return _expect(value["stringValue"], str, f"{what}.stringValue")
    if "boolValue" in value:
        return _expect(value["boolValue"], bool, f"{what}.boolValue")
    if "intValue" in value:
        number = value["intValue"]
        if isinstance(number, str) and _INT.fullmatch(number):
            return int(number)
        return _expect(number, int, f"{what}.intValue")
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, str):  # protobuf JSON spells "NaN", "Infinity" as strings
            try:
                return float(number)
            except ValueError:
                raise Malformed(f"{what}.doubleValue is not a number: {number[:40]!r}") from None
        return float(_expect(number, (int, float), f"{what}.doubleValue"))
    if "arrayValue" in value:
        array = _mapping(value["arrayValue"], f"{what}.arrayValue")
        return [
            _otlp_value(v, f"{what}.arrayValue.values[{i}]")
            for i, v in enumerate(_items(array.get("values"), f"{what}.arrayValue.values"))
        ]
    if "kvlistValue" in value:
        kvlist = _mapping(value["kvlistValue"], f"{what}.kvlistValue")
        return _otlp_attributes(kvlist.get("values"), f"{what}.kvlistValue.values")
    if "bytesValue" in value:
        return _expect(value["bytesValue"], str, f"{what}.bytesValue")
    return None


def _otlp_attributes(items: Any, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, kv in enumerate(_objects(items, what)):
        key = _expect(kv.get("key"), str, f"{what}[{i}].key")
        out[key] = _otlp_value(kv.get("value"), f"{what}[{i}].value")
    return out


def _otlp_id(value: Any, width: int, what: str) -> str | None:
    """OTLP-JSON ids are hex; some writers use base64 (the protobuf JSON mapping)."""
    if value is None or value == "":
        return None
    text: str = _expect(value, str, what).lower()
    if len(text) == width and all(c in "0123456789abcdef" for c in text):
        return text
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return text


def _enum(value: Any, names: Mapping[int, str], prefix: str, what: str) -> str:
    if value is None:
        return "UNSET"
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, "UNSET")
    return _expect(value, str, what).removeprefix(prefix) or "UNSET"


def _from_otlp_span(raw: Mapping[str, Any]) -> SpanRecord:
    status = _mapping(raw.get("status"), "status")
    span_id = _otlp_id(raw.get("spanId"), 16, "spanId")
    if span_id is None:
        raise Malformed("spanId is missing")
    return SpanRecord(
        trace_id=_otlp_id(raw.get("traceId"), 32, "traceId") or "",
        span_id=span_id,
        parent_id=_otlp_id(raw.get("parentSpanId"), 16, "parentSpanId"),
        name=_optional(raw, "name", str, "name") or "",
        kind=_enum(raw.get("kind"), _OTLP_KIND, "SPAN_KIND_", "kind"),
        start_ns=_time(raw.get("startTimeUnixNano"), "startTimeUnixNano"),
        end_ns=_time(raw.get("endTimeUnixNano"), "endTimeUnixNano"),
        attributes=_otlp_attributes(raw.get("attributes"), "attributes"),
        events=_events(raw, "timeUnixNano", _otlp_attributes),
        status=_enum(status.get("code"), _OTLP_STATUS, "STATUS_CODE_", "status.code"),
        status_message=_optional(status, "message", str, "status.message"),
    )


def _from_otlp(document: Mapping[str, Any]) -> Iterator[SpanRecord]:
    for r, resource in enumerate(_objects(document.get("resourceSpans"), "resourceSpans")):
        scopes = _objects(resource.get("scopeSpans"), f"resourceSpans[{r}].scopeSpans")
        for s, scope in enumerate(scopes):
            where = f"resourceSpans[{r}].scopeSpans[{s}].spans"
            for i, raw in enumerate(_objects(scope.get("spans"), where)):
                try:
                    yield _from_otlp_span(raw)
                except Malformed as exc:
                    raise Malformed(f"{where}[{i}]: {exc}") from None


def decode(document: Any) -> list[SpanRecord]:
    """The spans of one parsed document (a flat span or an OTLP request)."""
    if not isinstance(document, dict):
        raise Malformed(f"not a JSON object but {_type_name(document)}")
    if "resourceSpans" in document:
        return list(_from_otlp(document))
    if "trace_id" in document or "span_id" in document:
        return [_from_flat(document)]
    raise Malformed("neither an agentrt JSONL span nor OTLP-JSON")


def _events(
    raw: Mapping[str, Any], time_key: str, attributes: Callable[[Any, str], dict[str, Any]]
) -> tuple[EventRecord, ...]:
    """A span's events, in either format: its time field and attribute decoder differ."""
    return tuple(
        EventRecord(
            _optional(e, "name", str, f"events[{i}].name") or "",
            _time(e.get(time_key, 0), f"events[{i}].{time_key}"),
            attributes(e.get("attributes"), f"events[{i}].attributes"),
        )
        for i, e in enumerate(_objects(raw.get("events"), "events"))
    )
