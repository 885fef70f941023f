"""The runs page of ``agentrt serve`` (``GET /ui``, ``GET /ui/runs/{run_id}``): runs
of graphs that make no LLM call, served by uvicorn on a loopback port, then the
pages read as HTML and loaded in headless Chromium (its DOM, and its pixels)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from agentrt.langgraph import Runtime
from agentrt.serve import ServedGraph, create_app
from agentrt.tracing._waterfall import COLOURS
from tests.unit.test_serve_fixtures import (
    NO_LLM,
    Gate,
    Server,
    StepsState,
    chain,
    counter_graph,
    offline_pool,
    serving,
    steps_graph,
    wait_for,
)

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)",
)
HOSTILE = "<script>alert('x')</script>"


def pipeline_graph() -> Any:
    """Two nodes that take long enough to draw as wide bars under a 1 s deadline."""

    async def plan(state: StepsState) -> StepsState:
        await asyncio.sleep(0.15)
        return {"steps": ["plan"]}

    async def solve(state: StepsState) -> StepsState:
        await asyncio.sleep(0.25)
        return {"steps": ["solve"]}

    return chain(StepsState, "pipeline", ("plan", plan), ("solve", solve))


def broken_graph() -> Any:
    async def fails(state: StepsState) -> StepsState:
        raise ValueError(HOSTILE)

    return chain(StepsState, "broken", ("fails", fails))


def traced_runtime() -> Runtime:
    """A Runtime whose pool answers nothing, with its own tracer provider."""
    return Runtime(pool=offline_pool(), tracer_provider=TracerProvider())


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open.set()


@pytest.fixture
def server(gate: Gate) -> Iterator[Server]:
    graphs = {
        "pipeline": ServedGraph("pipeline", pipeline_graph(), NO_LLM),
        "broken": ServedGraph("broken", broken_graph(), NO_LLM),
        "counter": ServedGraph("counter", counter_graph(), NO_LLM),
        "steps": ServedGraph("steps", steps_graph(gate), NO_LLM),
    }
    with serving(create_app(graphs, runtime=traced_runtime)) as running:
        yield running


def run_wait(server: Server, graph: str, deadline_s: float = 1.0) -> str:
    """Run ``graph`` to its end; its run id."""
    response = httpx.post(
        f"{server.url}/runs/wait",
        json={"assistant_id": graph, "input": {}, "context": {"deadline_s": deadline_s}},
        timeout=30,
    )
    assert response.status_code in (200, 500), response.text
    return response.headers["agentrt-run-id"]


def page(server: Server, path: str) -> httpx.Response:
    response = httpx.get(f"{server.url}{path}", timeout=30)
    assert response.headers["content-type"].startswith("text/html")
    assert "<script" not in response.text and "src=" not in response.text
    return response


def bars(html: str, kind: str) -> list[str]:
    """The labels (the tooltip's first part) of the SVG bars of ``kind``."""
    found = re.findall(rf'<rect [^>]*class="bar {kind}[^"]*"[^>]*><title>([^<:]*):', html)
    return [str(label) for label in found]


def row(text: str, run_id: str) -> str:
    """The table row of ``run_id`` on the runs page."""
    found = re.search(rf'<tr class="run" id="run-{re.escape(run_id)}">(.*?)</tr>', text)
    assert found is not None, f"no row for run {run_id}"
    return found.group(1)


def test_the_runs_page_lists_each_run_with_its_outcome_and_a_link(server: Server) -> None:
    ok = run_wait(server, "pipeline")
    failed = run_wait(server, "broken", deadline_s=2.0)
    response = page(server, "/ui")
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    text = response.text
    assert re.findall(r'<tr class="run" id="run-([^"]+)">', text) == [failed, ok]  # newest first
    good = row(text, ok)
    assert "<td>pipeline</td>" in good and f'<a href="ui/runs/{ok}">waterfall</a>' in good
    assert '<td class="status">success</td><td class="ok">no</td>' in good
    assert '<td class="num">1.000s</td>' in good  # the deadline the request set
    bad = row(text, failed)
    assert '<td class="status">error</td><td class="degraded">degraded</td>' in bad
    assert '<td class="num">2.000s</td>' in bad and f'href="ui/runs/{failed}"' in bad
    # the failure's text is the graph's: shown escaped, never as markup
    assert HOSTILE not in text
    assert "node &#x27;fails&#x27; failed: ValueError: &lt;script&gt;alert(" in bad


def test_a_runs_page_draws_its_nodes_as_bars(server: Server) -> None:
    run_id = run_wait(server, "pipeline")
    response = page(server, f"/ui/runs/{run_id}")
    assert response.status_code == 200
    text = response.text
    assert f"<h1>Run <code>{run_id}</code></h1>" in text
    assert bars(text, "workflow") == ["invoke_workflow pipeline"]
    assert bars(text, "node") == ["node plan", "node solve"]
    assert '<a href="../../ui">' in text and "success" in text
    thread_id = server.app.state.registry.runs()[-1].thread_id
    view = httpx.get(f"{server.url}/threads/{thread_id}/runs/{run_id}", timeout=30).json()
    assert f"<dt>trace id</dt><dd>{view['agentrt']['trace_id']}</dd>" in text  # the same trace


def test_a_cancelled_run_still_has_its_waterfall(server: Server, gate: Gate) -> None:
    async def cancel_while_waiting() -> str:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            created = await http.post("/runs", json={"assistant_id": "steps", "input": {}})
            run = created.json()
            assert await wait_for(gate.entered)
            cancel = f"/threads/{run['thread_id']}/runs/{run['run_id']}/cancel?wait=1"
            assert (await http.post(cancel)).status_code == 204
            return str(run["run_id"])

    run_id = asyncio.run(cancel_while_waiting())
    text = page(server, f"/ui/runs/{run_id}").text
    assert "interrupted" in text
    assert bars(text, "node") == ["node first", "node wait"]
    assert bars(text, "workflow") == ["invoke_workflow steps"]


def test_an_unknown_run_is_a_404_page_that_says_so(server: Server) -> None:
    response = page(server, "/ui/runs/no-such-run")
    assert response.status_code == 404
    assert "No run &#x27;no-such-run&#x27; is known to this worker" in response.text
    hostile = page(server, "/ui/runs/%3Cb%3Ebold%22%27")
    assert hostile.status_code == 404
    assert "<b>bold" not in hostile.text and "&lt;b&gt;bold&quot;&#x27;" in hostile.text


def test_a_run_past_the_kept_ones_is_listed_no_more_and_its_page_is_a_404(
    server: Server,
) -> None:
    keeps = server.app.state.recent_runs.max_runs
    first = run_wait(server, "counter")
    for _ in range(keeps):
        run_wait(server, "counter")
    text = page(server, "/ui").text
    assert len(re.findall(r'<tr class="run"', text)) == keeps and first not in text
    response = page(server, f"/ui/runs/{first}")
    assert response.status_code == 404
    assert f"this worker keeps the latest {keeps} runs" in response.text


def test_without_a_tracer_provider_the_page_says_no_run_is_traced() -> None:
    def untraced() -> Runtime:
        runtime = traced_runtime()
        runtime.tracer_provider = trace.NoOpTracerProvider()  # no SDK: no span recorded
        return runtime

    app = create_app({"counter": ServedGraph("counter", counter_graph(), NO_LLM)},
                     runtime=untraced)  # fmt: skip
    with serving(app) as running:
        run_id = run_wait(running, "counter")
        text = page(running, "/ui").text
        assert "This worker records no spans" in text
        assert '<span class="note">not kept</span>' in row(text, run_id)
        missing = page(running, f"/ui/runs/{run_id}")
        assert missing.status_code == 404 and "records no spans" in missing.text


# -- in headless Chromium ----------------------------------------------------------


def chromium(url: str, profile: Path, *args: str) -> str:
    result = subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", *args, url,
        ],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result.stdout


@needs_chromium
def test_chromium_shows_the_run_row_and_the_node_bars(server: Server, tmp_path: Path) -> None:
    import matplotlib.image

    run_id = run_wait(server, "pipeline")
    table = chromium(f"{server.url}/ui", tmp_path / "profile", "--dump-dom")
    assert f'<tr class="run" id="run-{run_id}">' in table
    assert f'href="ui/runs/{run_id}"' in table

    dom = chromium(f"{server.url}/ui/runs/{run_id}", tmp_path / "profile", "--dump-dom")
    assert "<svg" in dom and bars(dom, "node") == ["node plan", "node solve"]

    shot = tmp_path / "run.png"
    chromium(
        f"{server.url}/ui/runs/{run_id}", tmp_path / "profile", f"--screenshot={shot}",
        "--window-size=1300,600",
    )  # fmt: skip
    pixels = matplotlib.image.imread(shot)[..., :3]
    rgb = [int(COLOURS["node"][i : i + 2], 16) / 255 for i in (1, 3, 5)]
    node_pixels = int((abs(pixels - rgb).max(axis=-1) < 0.02).sum())
    # plan (0.15 s) and solve (0.25 s) of a 1 s axis: wide bars, not 1-pixel slivers
    assert node_pixels > 2000, node_pixels
