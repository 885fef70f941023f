"""Admission: a worker runs at most ``max_in_flight`` runs (one more is a 503 with
``Retry-After``), and refuses at once (504) a run whose deadline is shorter than
the least its graph needs (``minimum_run_s``, the budget profile over the path)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import InternalServerError
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agentrt.budget import BudgetProfile, GraphTopology
from agentrt.budget._minimum import minimum_run_s
from agentrt.core._errors import ConfigurationError
from agentrt.serve import Admission, RequestRefused, ServedGraph, create_app
from agentrt.tracing import use_meter_provider
from tests.unit.test_serve_fixtures import (
    NO_LLM,
    Gate,
    counter_graph,
    offline_runtime,
    serving,
    steps_graph,
    wait_for,
)

SLOW_CALLS = BudgetProfile.model_validate(
    {
        "default_node": {"calls_per_visit": 0.0, "p50_s": 0.0, "p90_s": 0.0, "p95_s": 0.0,
                         "p99_s": 0.0, "min_call_s": 0.0, "overhead_s": 0.01},
        "nodes": {"wait": {"calls_per_visit": 2.0, "expected_visits": 1.5, "p50_s": 1.0,
                           "p90_s": 1.0, "p95_s": 1.0, "p99_s": 1.0, "min_call_s": 0.5}},
    }
)  # fmt: skip
"""The ``steps`` graph as if ``wait`` made LLM calls: 1.5 visits × 2 calls × 0.5 s at
least, plus 10 ms of overhead per node visit: 1.535 s."""


# -- the minimum a run needs (pure) -----------------------------------------------------


def test_the_minimum_is_the_planned_path_at_its_cheapest_calls() -> None:
    topology = GraphTopology.from_langgraph(steps_graph(Gate()))
    assert minimum_run_s(SLOW_CALLS, topology) == pytest.approx(0.02 + 1.5 * (2 * 0.5 + 0.01))
    assert minimum_run_s(SLOW_CALLS, topology, start=["last"]) == pytest.approx(0.01)
    assert minimum_run_s(NO_LLM, topology) == 0.0


def test_parallel_starts_share_wall_clock_and_alternatives_count_the_longest() -> None:
    topology = GraphTopology.from_edges(
        [("__start__", "a"), ("__start__", "b"), ("a", "c"), ("b", "c"), ("c", "__end__")]
    )
    profile = BudgetProfile.model_validate(
        {"default_node": {"min_call_s": 0.1, "p50_s": 1.0},
         "nodes": {"b": {"min_call_s": 0.4, "p50_s": 1.0}}}
    )  # fmt: skip
    assert minimum_run_s(profile, topology) == pytest.approx(0.4 + 0.1)


def test_without_a_topology_the_minimum_is_calls_per_run_cheapest_calls() -> None:
    profile = BudgetProfile.model_validate(
        {"calls_per_run": 3, "default_node": {"min_call_s": 0.2, "p50_s": 1.0}}
    )
    assert minimum_run_s(profile) == pytest.approx(0.6)


# -- the counter ------------------------------------------------------------------------


def test_the_cap_refuses_one_more_and_counts_it() -> None:
    admission = Admission(max_in_flight=2)
    admission.enter()
    admission.enter()
    with pytest.raises(RequestRefused) as refused:
        admission.enter()
    assert refused.value.status_code == 503
    assert refused.value.headers == {"Retry-After": "1"}
    admission.leave()
    admission.enter()
    assert (admission.admitted, admission.in_flight, dict(admission.refused)) == (
        3, 2, {"in_flight": 1},
    )  # fmt: skip


def test_a_deadline_under_the_minimum_is_refused_and_counted() -> None:
    admission = Admission()
    admission.check_deadline("steps", 2.0, 1.5)  # fits
    with pytest.raises(RequestRefused) as refused:
        admission.check_deadline("steps", 1.0, 1.5)
    assert refused.value.status_code == 504
    assert "needs at least 1.500s" in refused.value.detail
    assert dict(admission.refused) == {"deadline_too_short": 1}


def test_a_deadline_that_fits_idle_servers_is_refused_at_load() -> None:
    admission = Admission()
    admission.check_deadline("steps", 2.0, 1.5, slowdown=1.0)  # fits idle servers
    with pytest.raises(RequestRefused) as refused:
        admission.check_deadline("steps", 2.0, 1.5, slowdown=2.0)  # calls take 2x now
    assert refused.value.status_code == 504
    assert "needs at least 3.000s at the pool's load now (2.00x" in refused.value.detail
    assert dict(admission.refused) == {"deadline_too_short": 1}


@pytest.mark.parametrize("bad", [0, -1, True])
def test_the_cap_must_be_a_positive_integer(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_in_flight"):
        Admission(max_in_flight=bad)


# -- served ---------------------------------------------------------------------------


async def test_past_the_cap_a_run_is_a_503_with_retry_after() -> None:
    gate = Gate()
    graphs = {
        "steps": ServedGraph("steps", steps_graph(gate), NO_LLM),
        "counter": ServedGraph("counter", counter_graph(), NO_LLM),
    }
    app = create_app(graphs, runtime=offline_runtime, max_in_flight=1)
    with serving(app) as server:
        client = get_client(url=server.url, api_key=None)
        thread = await client.threads.create()
        held = await client.runs.create(thread["thread_id"], "steps", input={"steps": []})
        assert await wait_for(gate.entered)
        async with httpx.AsyncClient(base_url=server.url) as http:
            refused = await http.post(
                "/runs/wait", json={"assistant_id": "counter", "input": {"count": 1}}
            )
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "--max-in-flight 1" in refused.json()["detail"]
        with pytest.raises(InternalServerError):  # the sdk's stream raises it as a 5xx
            async for _ in client.runs.stream(None, "counter", input={"count": 1}):
                pass
        assert app.state.admission.refused["in_flight"] == 2
        gate.open.set()
        assert await client.runs.join(thread["thread_id"], held["run_id"]) == {
            "steps": ["first", "wait", "last"]
        }
        assert await client.runs.wait(None, "counter", input={"count": 1}) == {"count": 2}
        assert app.state.admission.admitted == 2
        assert app.state.admission.in_flight == 0


async def test_a_deadline_that_cannot_be_met_is_refused_before_it_runs() -> None:
    gate = Gate()
    app = create_app(
        {"steps": ServedGraph("steps", steps_graph(gate), SLOW_CALLS)}, runtime=offline_runtime
    )
    with serving(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            refused = await http.post(
                "/runs/wait",
                json={"assistant_id": "steps", "input": {"steps": []}},
                headers={"agentrt-timeout": "800m"},
            )
            assert refused.status_code == 504
            body = refused.json()
            assert re.match(r"deadline 0\.\d+s cannot be met: graph 'steps' needs at least "
                            r"1\.535s", body["detail"])  # fmt: skip
            assert body["field"] == "deadline_s"
            assert not gate.entered.is_set()  # nothing ran
            assert app.state.admission.refused["deadline_too_short"] == 1
            assert app.state.admission.admitted == 0
            info = (await http.get("/assistants/steps")).json()
            assert info["metadata"]["minimum_s"] == pytest.approx(1.535)


# -- metrics --------------------------------------------------------------------------


def test_each_refusal_is_counted_on_agentrts_metrics() -> None:
    reader = InMemoryMetricReader()
    with use_meter_provider(MeterProvider(metric_readers=[reader])):
        admission = Admission(max_in_flight=1)
        admission.enter()
        for _ in range(2):
            with pytest.raises(RequestRefused):
                admission.enter()
        with pytest.raises(RequestRefused):
            admission.check_deadline("steps", 0.1, 1.0)
    data = reader.get_metrics_data()
    assert data is not None
    counted = {
        point.attributes["agentrt.admission.reason"]: point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "agentrt.admission.refusals"
        for point in metric.data.data_points  # type: ignore[union-attr]
    }
    assert counted == {"in_flight": 2, "deadline_too_short": 1}


async def test_the_server_answers_metrics_in_the_prometheus_format() -> None:
    app = create_app({"counter": ServedGraph("counter", counter_graph(), NO_LLM)},
                     runtime=offline_runtime)  # fmt: skip
    with serving(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
