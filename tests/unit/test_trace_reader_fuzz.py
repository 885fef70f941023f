"""Hypothesis against the trace reader: arbitrary bytes, arbitrary JSON, span-
shaped documents with any field replaced by any JSON, random parent links
(loops included), nesting and size at their limits. Whatever the file holds,
reading it returns runs or raises the one documented error,
:class:`~agentrt.tracing.TraceFileError`; and what it returns, the summary,
the waterfall and tuning's extraction take without raising or hanging."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentrt.cli.waterfall import layout, render_html
from agentrt.tracing import AGENTRT, GEN_AI, TraceFileError
from agentrt.tracing._records import RunTrace, TraceLimits, load_runs
from agentrt.tracing._summary import summarise
from agentrt.tuning._samples import extract

FUZZ = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

IDS = ["a" * 16, "b" * 16, "c" * 16, "d" * 16]
ATTRIBUTE_KEYS = [
    GEN_AI.OPERATION_NAME, AGENTRT.NODE, AGENTRT.STRATEGY, AGENTRT.N, AGENTRT.ACTUAL_LATENCY_S,
    AGENTRT.SLICE_S, AGENTRT.DEADLINE_S, AGENTRT.BRANCH_OUTCOME, AGENTRT.BRANCH_TOKENS,
    AGENTRT.NODE_STEP, "server.address", "server.port", AGENTRT.RUN_CORRECT,
]  # fmt: skip
attribute_values = (
    st.sampled_from(["chat", "invoke_workflow", "execute_tool", "finished", "solve", "$x$"])
    | json_values
)


@st.composite
def flat_spans(draw: st.DrawFn) -> dict[str, Any]:
    """An agentrt JSONL span, most fields valid, some replaced by anything."""
    start = draw(st.integers(0, 10**6))
    span: dict[str, Any] = {
        "trace_id": draw(st.sampled_from(["t1", "t2"])),
        "span_id": draw(st.sampled_from(IDS)),
        "parent_span_id": draw(st.none() | st.sampled_from(IDS)),
        "name": draw(st.sampled_from(["node solve", "chat m", "branch 1", "x"])),
        "kind": "INTERNAL",
        "start_time_unix_nano": start,
        "end_time_unix_nano": start + draw(st.integers(-10, 10**6)),
        "attributes": draw(
            st.dictionaries(st.sampled_from(ATTRIBUTE_KEYS), attribute_values, max_size=6)
        ),
        "events": [],
        "status": {"code": "UNSET"},
    }
    for key in draw(st.lists(st.sampled_from(sorted(span)), max_size=2)):
        span[key] = draw(json_values)
    return span


@st.composite
def otlp_documents(draw: st.DrawFn) -> dict[str, Any]:
    """An OTLP-JSON request of flat spans translated, with pieces replaced."""
    spans = []
    for flat in draw(st.lists(flat_spans(), max_size=3)):
        attributes = flat["attributes"] if isinstance(flat["attributes"], dict) else {}
        span: dict[str, Any] = {
            "traceId": flat["trace_id"], "spanId": flat["span_id"],
            "parentSpanId": flat["parent_span_id"], "name": flat["name"],
            "kind": draw(st.integers(0, 6) | json_values),
            "startTimeUnixNano": str(flat["start_time_unix_nano"]),
            "endTimeUnixNano": flat["end_time_unix_nano"],
            "attributes": [
                {"key": k, "value": draw(st.sampled_from([
                    {"stringValue": str(v)}, {"intValue": str(v)}, {"doubleValue": v},
                    {"boolValue": v}, {"arrayValue": {"values": [{"stringValue": "x"}]}},
                    {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 1}}]}}, v,
                ]))}
                for k, v in attributes.items()
            ],
        }  # fmt: skip
        spans.append(span)
    document: dict[str, Any] = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    if draw(st.booleans()):
        document["resourceSpans"][0][draw(st.sampled_from(["scopeSpans", "resource"]))] = draw(
            json_values
        )
    return document


def read(data: bytes, limits: TraceLimits | None = None) -> list[RunTrace] | None:
    """Read ``data`` as a trace file; None when it raised TraceFileError. Any other
    exception fails the test, and so does any exception using what was read."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"
        path.write_bytes(data)
        try:
            runs = load_runs([path]) if limits is None else load_runs([path], limits=limits)
        except TraceFileError as exc:
            assert exc.path == path and str(exc).startswith(str(path))
            return None
    summarise(runs)
    extract(runs)
    for run in runs:
        assert len(list(run.walk())) == len(run.spans)  # each span once, loops or not
        for span in run.spans:
            run.node_of(span)
        render_html(layout(run))
    return runs


def lines(documents: list[Any]) -> bytes:
    return "".join(json.dumps(d) + "\n" for d in documents).encode()


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    read(data)


@FUZZ
@given(st.lists(json_values, max_size=4))
def test_arbitrary_json_lines(documents: list[Any]) -> None:
    read(lines(documents))


@FUZZ
@given(st.lists(flat_spans(), min_size=1, max_size=8))
def test_span_shaped_lines_with_any_field_broken(spans: list[dict[str, Any]]) -> None:
    read(lines(spans))


@FUZZ
@given(otlp_documents())
def test_otlp_documents_with_any_piece_broken(document: dict[str, Any]) -> None:
    read(lines([document]))
    read(json.dumps(document, indent=1).encode())  # the one-document form


@settings(max_examples=60)
@given(st.integers(0, 200), st.sampled_from(["[", '{"k":']))
def test_nesting_past_the_limit_is_refused_never_a_recursion_error(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    value = opener * depth + "1" + closer * depth
    data = ('{"trace_id": "t", "span_id": "s", "start_time_unix_nano": 1, '
            f'"end_time_unix_nano": 2, "attributes": {{"deep": {value}}}}}\n').encode()  # fmt: skip
    limits = TraceLimits(max_depth=32)
    runs = read(data, limits)
    assert (runs is None) == (depth + 2 > limits.max_depth)


@settings(max_examples=60)
@given(st.integers(1, 3000), st.integers(1, 2))
def test_lines_past_the_byte_limit_are_refused(size: int, count: int) -> None:
    limits = TraceLimits(max_line_bytes=1024)
    span = {"trace_id": "t", "span_id": "s", "start_time_unix_nano": 1,
            "end_time_unix_nano": 2, "attributes": {"pad": ""}}  # fmt: skip
    bare = len(json.dumps(span))
    span["attributes"] = {"pad": "x" * max(0, size - bare)}
    line = json.dumps(span)
    runs = read(((line + "\n") * count).encode(), limits)
    assert (runs is None) == (len(line) > limits.max_line_bytes)


@pytest.mark.parametrize("depth", [10_000, 1_000_000])
def test_very_deep_nesting_is_refused_quickly(depth: int) -> None:
    assert read(b"[" * depth + b"]" * depth + b"\n") is None
