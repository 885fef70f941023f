"""The deadline on the wire: every chat request says how long it may take
(``agentrt-timeout``), and endpoints that schedule by priority get the deadline
as vLLM's ``priority`` (earliest deadline first, comparable across processes)."""

from __future__ import annotations

import math

from agentrt.core._clock import FakeClock
from agentrt.core._deadline import DEADLINE_HEADER, Deadline
from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec
from agentrt.pool._local import SCHEDULING_ARGS, ServerRecord
from tests.unit.vllm_double import FakeCluster, FakeVLLM, answers_chunks

REQUEST = ChatRequest(messages=[{"role": "user", "content": "What is 3 plus 4?"}], max_tokens=8)


def test_earlier_deadlines_have_lower_priorities() -> None:
    clock = FakeClock()
    soon, later = Deadline.after(1.0, clock=clock), Deadline.after(5.0, clock=clock)
    assert soon.priority() is not None and later.priority() is not None
    assert later.priority() - soon.priority() == 4000  # type: ignore[operator]
    assert Deadline.never(clock=clock).priority() is None


def test_an_expired_deadline_sends_zero_time_left() -> None:
    clock = FakeClock()
    deadline = Deadline.after(1.0, clock=clock)
    clock.advance(2.0)
    assert deadline.to_header() == "0n"
    assert Deadline.from_header(deadline.to_header(), clock=clock).remaining() == 0.0


async def sent(spec_update: dict[str, object], deadline_s: float) -> tuple[dict, dict]:
    server = FakeVLLM(chunks=answers_chunks(["7"]))
    cluster = FakeCluster(a=server)
    spec = EndpointSpec(url=cluster.url("a"), **spec_update)  # type: ignore[arg-type]
    async with EndpointPool([spec], transport=cluster.transport, health_interval_s=0) as pool:
        deadline = Deadline.after(deadline_s) if math.isfinite(deadline_s) else None
        async with pool.stream(REQUEST, deadline=deadline) as stream:
            await stream.collect()
    return dict(server.request_headers[-1]), server.requests[-1]


async def test_every_request_carries_the_time_it_may_take() -> None:
    headers, body = await sent({}, 2.0)
    remaining = Deadline.from_header(headers[DEADLINE_HEADER]).remaining()
    assert 0.0 < remaining <= 2.0
    assert "priority" not in body  # off unless the endpoint schedules by priority


async def test_a_priority_endpoint_gets_the_deadline_as_priority() -> None:
    _, body = await sent({"deadline_priority": True}, 2.0)
    assert isinstance(body["priority"], int) and body["priority"] > 0


async def test_no_deadline_sends_neither() -> None:
    headers, body = await sent({"deadline_priority": True}, math.inf)
    assert DEADLINE_HEADER not in headers and "priority" not in body


def record(launch_args: list[str]) -> ServerRecord:
    return ServerRecord(name="plain-0", group="plain", pid=1, port=8000, log_path="x",
                        model_path="m", served_model="s", launch_args=launch_args)  # fmt: skip


def test_local_servers_get_deadline_priorities_only_when_asked() -> None:
    started = record([*SCHEDULING_ARGS])
    assert started.schedules_by_priority
    assert not started.endpoint().deadline_priority  # off by default (AGENTRT_DEADLINE_PRIORITY)
    assert started.endpoint(deadline_priority=True).deadline_priority
    fcfs = record([*SCHEDULING_ARGS, "--scheduling-policy", "fcfs"])
    assert not fcfs.endpoint(deadline_priority=True).deadline_priority
    old = record([])  # a record from an older agentrt: no priority scheduling
    assert not old.endpoint(deadline_priority=True).deadline_priority
