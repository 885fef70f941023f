"""The event-stream parser against the WHATWG spec cases, and chunking invariance."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.core._errors import ProtocolError
from agentrt.pool._protocol import ServerSentEvent, SSEDecoder, iter_sse_data

URL = "http://a.test:8000"


def events(stream: bytes) -> list[ServerSentEvent]:
    return SSEDecoder(URL).feed(stream)


def test_data_lines_are_joined_with_newlines() -> None:
    assert events(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [ServerSentEvent("YHOO\n+2\n10")]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end_ends_a_line(end: bytes) -> None:
    stream = end.join([b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert [e.data for e in events(stream)] == ["a\nb", "c"]


def test_mixed_line_ends_in_one_stream() -> None:
    assert [e.data for e in events(b"data: a\r\ndata: b\rdata: c\n\r\n")] == ["a\nb\nc"]


def test_one_leading_space_is_dropped_and_no_more() -> None:
    stream = b"data:x\n\ndata: x\n\ndata:  x\n\ndata: \n\ndata\n\ndata:\n\n"
    assert [e.data for e in events(stream)] == ["x", "x", " x", "", "", ""]


def test_colons_after_the_first_belong_to_the_value() -> None:
    assert events(b'data: {"a": "b:c"}\n\n') == [ServerSentEvent('{"a": "b:c"}')]


def test_comments_are_skipped_and_dispatch_nothing() -> None:
    assert events(b": keep-alive\n\n:\n\ndata: x\n: inside\ndata: y\n\n") == [
        ServerSentEvent("x\ny")
    ]


def test_a_blank_line_without_data_dispatches_nothing() -> None:
    assert events(b"\n\n\nevent: ping\n\nid: 1\n\n") == []


def test_event_type_applies_to_one_event_and_defaults_to_message() -> None:
    stream = b"event: add\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n"
    assert [(e.event, e.data) for e in events(stream)] == [
        ("add", "1"),
        ("message", "2"),
        ("message", "3"),
    ]


def test_the_last_event_id_persists_until_changed() -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid: 8\0x\ndata: c\n\nid\ndata: d\n\n"
    got = [(e.id, e.data) for e in events(stream)]
    assert got == [("7", "a"), ("7", "b"), ("7", "c"), ("", "d")]


def test_retry_takes_only_ascii_digits() -> None:
    decoder = SSEDecoder(URL)
    decoder.feed(b"retry: 3000\n\n")
    assert decoder.retry_ms == 3000
    decoder.feed(b"retry: 1.5\n\nretry: \xc2\xb2\n\nretry:\n\n")
    assert decoder.retry_ms == 3000


def test_an_unterminated_last_event_is_dropped() -> None:
    assert events(b"data: a\n\ndata: b\n") == [ServerSentEvent("a")]
    assert events(b"data: a\n\ndata: b") == [ServerSentEvent("a")]


def test_a_leading_byte_order_mark_is_dropped_once() -> None:
    assert events(b"\xef\xbb\xbfdata: a\n\n") == [ServerSentEvent("a")]
    with pytest.raises(ProtocolError, match="not a server-sent event"):
        events(b"data: a\n\n\xef\xbb\xbfdata: b\n\n")


def test_invalid_utf8_is_replaced() -> None:
    assert events(b"data: \xff\xfe\n\n") == [ServerSentEvent("\ufffd\ufffd")]


@pytest.mark.parametrize("line", [b"garbage line", b"<html>", b"Data: x", b" data: x"])
def test_a_field_an_openai_stream_never_sends_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="not a server-sent event line") as caught:
        events(line + b"\n\n")
    assert caught.value.url == URL


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_data_is_yielded_until_done() -> None:
    parts = [b"data: 1\n\n", b": ping\n\ndata: 2\n", b"\n", b"data: [DONE]\n\ndata: 3\n\n"]
    assert [d async for d in iter_sse_data(_chunks(parts), URL)] == ["1", "2"]


def _split(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


data_values = st.sampled_from([b"", b" ", b" x", b"  y", b":z", b"\xe2\x82\xac"])
other_lines = [b"event: add", b"id: 3", b"id", b"retry: 10", b": note", b"", b"\xef\xbb\xbf"]
field_lines = st.one_of(
    data_values.map(lambda v: b"data:" + v),
    st.sampled_from(other_lines),
    st.text(alphabet="ab :{}", max_size=6).map(lambda t: b"data: " + t.encode()),
)
streams = st.builds(
    lambda lines, ends: b"".join(line + end for line, end in zip(lines, ends, strict=False)),
    st.lists(field_lines, max_size=12),
    st.lists(st.sampled_from([b"\n", b"\r", b"\r\n"]), min_size=12, max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_any_chunking_yields_the_same_events(stream: bytes, cuts: list[int]) -> None:
    whole = SSEDecoder(URL)
    pieces = SSEDecoder(URL)
    try:
        expected = whole.feed(stream)
    except ProtocolError:  # a BOM past the first line: the same error however it is cut
        with pytest.raises(ProtocolError):
            for part in _split(stream, cuts):
                pieces.feed(part)
        return
    got = [event for part in _split(stream, cuts) for event in pieces.feed(part)]
    assert got == expected
    assert pieces.retry_ms == whole.retry_ms


@settings(max_examples=200, deadline=None)
@given(stream=st.binary(max_size=80), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_any_bytes_in_any_chunks_read_alike(stream: bytes, cuts: list[int]) -> None:
    def read(parts: list[bytes]) -> list[ServerSentEvent] | str:
        decoder = SSEDecoder(URL)
        try:
            return [event for part in parts for event in decoder.feed(part)]
        except ProtocolError as exc:
            return str(exc)

    assert read(_split(stream, cuts)) == read([stream])
