"""Fuzzing the event-stream and chunk decoders (``iter_sse_data``, ``decode_chunk``):
arbitrary bytes in arbitrary splits, arbitrary nesting. Only the documented
errors (agentrt's ``EndpointError`` subclasses) escape, and memory stays bounded:
a long line is a ``ProtocolError``, not a growing buffer."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.core._errors import EndpointError, ProtocolError
from agentrt.pool._protocol import SSEDecoder, decode_chunk, iter_sse_data

URL = "http://fuzz.test:8000"
FUZZ = settings(max_examples=200, deadline=None)


async def _parts(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _split(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


async def _decode_all(parts: list[bytes], *, max_line_bytes: int = 1 << 20) -> int:
    """Read every event through both decoders; the events decoded."""
    decoded = 0
    async for data in iter_sse_data(_parts(parts), URL, max_line_bytes=max_line_bytes):
        decoded += len(decode_chunk(data, 0.0, URL))
    return decoded


def _nested(depth: int, opener: str) -> str:
    inner = '{"a": ' if opener == "{" else "["
    closer = "}" if opener == "{" else "]"
    return inner * depth + "1" + closer * depth


chunk_texts = st.one_of(
    st.text(max_size=80),
    st.builds(_nested, st.integers(0, 200), st.sampled_from(["[", "{"])),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=12,
    ).map(lambda v: json.dumps({"choices": v}) if not isinstance(v, list) else json.dumps(v)),
)
events = st.one_of(
    chunk_texts.map(lambda t: b"data: " + t.encode("utf-8", "surrogatepass") + b"\n\n"),
    st.binary(max_size=60),
    st.sampled_from([b": ping\n", b"\r\n", b"data: [DONE]\n\n", b"event: x\r", b"\xef\xbb\xbf"]),
)


@FUZZ
@given(stream=st.lists(events, max_size=10).map(b"".join), cuts=st.lists(st.integers(0)))
async def test_any_bytes_in_any_splits_decode_or_raise_a_documented_error(
    stream: bytes, cuts: list[int]
) -> None:
    try:
        await _decode_all(_split(stream, cuts))
    except EndpointError as exc:  # ProtocolError, or the server's own EndpointUnavailable
        assert exc.url == URL


@FUZZ
@given(depth=st.integers(0, 5000), opener=st.sampled_from(["[", "{"]), wrap=st.booleans())
def test_any_nesting_is_decoded_or_refused_never_a_recursion_error(
    depth: int, opener: str, wrap: bool
) -> None:
    nested = _nested(depth, opener)
    text = json.dumps({"choices": []})[:-1] + f', "x": {nested}}}' if wrap else nested
    try:
        decode_chunk(text, 0.0, URL)
    except ProtocolError as exc:
        assert depth + wrap > 64 or "not a JSON object" in str(exc) or "choices" in str(exc)
    else:
        assert wrap and depth + 1 <= 64


@FUZZ
@given(value=st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=20,
))  # fmt: skip
def test_any_json_value_in_any_field_is_read_or_named(value: Any) -> None:
    for chunk in (
        {"choices": value},
        {"choices": [value]},
        {"choices": [{"index": 0, "delta": value}]},
        {"choices": [{"index": 0, "delta": {"content": value}, "finish_reason": value}]},
        {"choices": [{"index": 0, "logprobs": {"content": value}, "token_ids": value}]},
        {"choices": [], "usage": value},
        {"error": value},
    ):
        try:
            decode_chunk(json.dumps(chunk), 0.0, URL)
        except EndpointError as exc:
            assert exc.url == URL


@settings(max_examples=30, deadline=None)
@given(piece=st.integers(1, 70_000), cap=st.integers(1, 300_000))
def test_a_long_line_is_refused_before_the_buffer_passes_the_cap(piece: int, cap: int) -> None:
    decoder = SSEDecoder(URL, max_line_bytes=cap)
    fed = 0
    with pytest.raises(ProtocolError, match="line limit"):
        while True:
            decoder.feed(b"d" * piece)
            fed += piece
            assert len(decoder._tail) <= cap  # never more than the cap is held
            assert fed <= cap + piece
