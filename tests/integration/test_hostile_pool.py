"""The pool against a hostile server in its own process (``tests.support.hostile_server``):
for every behaviour, opening an ``EndpointPool`` and streaming one request either
works or raises a documented agentrt error in bounded time, and the API key the
server echoes never appears in an error, a log or the pool's snapshot.

These tests need no vLLM: they do not use the local-pool fixtures. The bounds are
behavioural (the deadline plus a generous margin, the probe limit), not speed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time

import pytest

from agentrt.core._deadline import Deadline
from agentrt.core._errors import (
    AgentrtError,
    DeadlineExceeded,
    EndpointRejected,
    EndpointUnavailable,
    NoHealthyEndpoint,
    ProtocolError,
)
from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec
from agentrt.pool._client import PROBE_TIMEOUT_S
from tests.support.hostile_server import HOSTILE_BEHAVIOURS, hostile_server

pytestmark = pytest.mark.timeout(120)

KEY = f"hostile{secrets.token_hex(12)}"  # no well-known prefix: only its registration blanks it
DEADLINE_S = 2.0
BOUND_S = DEADLINE_S + 5.0
OPEN_BOUND_S = 2 * PROBE_TIMEOUT_S + 5.0  # /v1/models then /version, each under its limit
REQUEST = ChatRequest(
    messages=[{"role": "user", "content": "What is 6 times 7?"}], n=2, temperature=0.7,
    max_tokens=16,
)  # fmt: skip

OUTCOMES: dict[str, tuple[type[AgentrtError], ...]] = {
    "normal": (),
    "error_chunk": (EndpointUnavailable,),
    "http400": (EndpointRejected,),
    "http401_echo": (EndpointRejected,),
    "bad_json": (ProtocolError,),
    "deep_json": (ProtocolError,),
    "huge_line": (ProtocolError,),
    "huge_content": (ProtocolError,),
    # ejected at start-up; the request's own re-check trickles until the deadline
    "trickle_models": (DeadlineExceeded, NoHealthyEndpoint),
    "junk_metrics": (),
    "echo_secret_stream": (EndpointUnavailable,),
    "always_503": (EndpointUnavailable, DeadlineExceeded),
    "slow_headers": (DeadlineExceeded,),
}


def test_every_behaviour_has_an_expected_outcome() -> None:
    assert set(OUTCOMES) == set(HOSTILE_BEHAVIOURS)


@pytest.mark.parametrize("behaviour", HOSTILE_BEHAVIOURS)
async def test_a_hostile_server_is_read_or_named_in_bounded_time(
    behaviour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentrt")
    error: AgentrtError | None = None
    with hostile_server(behaviour) as url:
        spec = EndpointSpec(url=url, api_key=KEY)  # type: ignore[arg-type]
        opening = time.monotonic()
        async with EndpointPool([spec], health_interval_s=0.2) as pool:
            open_s = time.monotonic() - opening
            start = time.monotonic()
            try:
                async with pool.stream(REQUEST, deadline=Deadline.after(DEADLINE_S)) as stream:
                    await stream.collect()
            except AgentrtError as exc:
                error = exc
            elapsed_s = time.monotonic() - start
            if behaviour == "junk_metrics":
                await asyncio.sleep(1.0)  # the monitor reads the junk a few times ...
                assert pool._monitor is not None and not pool._monitor.done()  # ... and goes on
                assert pool.endpoints[0].healthy(time.monotonic())
            snapshot = json.dumps(pool.snapshot(), default=str)

    assert open_s < OPEN_BOUND_S, f"opening the pool took {open_s:.1f} s"
    assert elapsed_s < BOUND_S, f"the request took {elapsed_s:.1f} s"
    expected = OUTCOMES[behaviour]
    if not expected:
        assert error is None, f"{behaviour}: {error!r}"
        assert stream.complete
        assert [b.text for b in stream.branches.values()] == ["The answer is 42."] * 2
    else:
        assert isinstance(error, expected), f"{behaviour}: {error!r}"
        texts = [str(error), repr(error), repr(error.__cause__), repr(error.__context__)]
        assert not any(KEY in text for text in texts), f"the key leaked: {texts}"
    assert KEY not in snapshot and KEY not in caplog.text


async def test_a_trickling_model_list_does_not_hang_start_up() -> None:
    with hostile_server("trickle_models") as url:
        opening = time.monotonic()
        async with EndpointPool([EndpointSpec(url=url)], health_interval_s=0) as pool:
            open_s = time.monotonic() - opening
            assert not pool.endpoints[0].healthy(time.monotonic())
            assert "no complete answer" in (pool.endpoints[0].last_error or "")
    assert PROBE_TIMEOUT_S - 0.5 < open_s < PROBE_TIMEOUT_S + 3.0
