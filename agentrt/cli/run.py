"""``agentrt run``: the main job. A graph under a deadline, with live progress and a table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agentrt.core._errors import ConfigurationError
from agentrt.core._settings import Settings
from agentrt.langgraph._inputs import graph_input, task_judge
from agentrt.langgraph._loading import load_graph
from agentrt.langgraph._runner import RunEvent, RunObserver, RunResult
from agentrt.langgraph._runtime import Runtime
from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._local import pool_endpoints
from agentrt.pool._pool import EndpointPool
from agentrt.tasks import is_correct
from agentrt.tracing._setup import ensure_tracing, flush_traces_async
from agentrt.tts._calibration_store import resolve_latency
from agentrt.tts._latency import LatencyModel

__all__ = ["parse_deadline", "run_graph_command"]

_DEADLINE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m)?\s*$")
_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_deadline(text: str) -> float:
    """``"8s"``, ``"500ms"``, ``"1.5"`` (seconds), ``"2m"`` -> seconds; must be > 0."""
    match = _DEADLINE.match(text)
    if match is None:
        raise ConfigurationError(
            f"--deadline must be a positive duration like 8s, 500ms or 1.5, got {text!r}"
        )
    seconds = float(match.group(1)) * _UNITS_S[match.group(2)]
    if seconds <= 0:
        raise ConfigurationError(f"--deadline must be greater than zero, got {text!r}")
    return seconds


@dataclass
class _Live:
    """What the live display shows: per node, its state and visits."""

    deadline_s: float
    remaining_s: float = 0.0
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def on_event(self, event: RunEvent) -> None:
        self.remaining_s = event.remaining_s
        row = self.nodes.setdefault(event.node, {"running": 0, "visits": 0, "errors": 0})
        if event.kind == "node_started":
            row["running"] += 1
            row["visits"] += 1
        else:
            row["running"] = max(0, row["running"] - 1)
            row["errors"] += event.error is not None

    def render(self) -> Group:
        table = Table(title=None, expand=False)
        for column in ("node", "state", "visits"):
            table.add_column(column)
        for node, row in self.nodes.items():
            state = "[yellow]running[/]" if row["running"] else "[green]done[/]"
            table.add_row(node, state, str(row["visits"]))
        header = Text(f"time left {self.remaining_s:6.2f}s of {self.deadline_s:.2f}s")
        return Group(header, table)


def _calls_table(result: RunResult) -> Table:
    table = Table(title="LLM calls: slice allocated vs used")
    for column in ("#", "node", "slice s", "used s", "tokens", "config", "branches f/e/c",
                   "answer", "status"):  # fmt: skip
        table.add_column(column)
    for record in result.calls:
        alloc, res = record.allocation, record.result
        config = res.config.label.split(",")[0] if res.config else "-"
        status = "degraded" if res.degraded else alloc.status
        table.add_row(
            str(alloc.index), alloc.node, f"{alloc.slice_s:.2f}", f"{res.latency_s:.2f}",
            str(res.completion_tokens), config,
            f"{res.branches.finished}/{res.branches.early_stopped}/{res.branches.cancelled}",
            "-" if res.answer is None else res.answer.key, status,
        )  # fmt: skip
    return table


def _nodes_table(result: RunResult) -> Table:
    table = Table(title="per node")
    for column in ("node", "rounds", "calls", "allocated s", "used s", "busy s"):
        table.add_column(column)
    for node in result.report.nodes:
        table.add_row(node.node, str(node.rounds), str(node.calls), f"{node.allocated_s:.2f}",
                      f"{node.used_s:.2f}", f"{node.busy_s:.2f}")  # fmt: skip
    return table


async def run_graph_command(
    *,
    graph_path: str,
    deadline: str,
    input_json: str | None,
    task_seed: int | None,
    profile: Path | None,
    calibration: Path | None,
    policy: str | None,
    console: Console,
) -> RunResult:
    seconds = parse_deadline(deadline)
    ensure_tracing()  # one JSONL file per run under traces/, OTLP when configured
    loaded = load_graph(graph_path)
    graph_in, task = graph_input(loaded, input_json, task_seed)
    settings = Settings()
    chosen_profile = profile or loaded.profile(settings)
    async with pool_endpoints(announce=console.print) as specs:
        latency = await _latency(calibration, settings, specs, console)
        live = _Live(deadline_s=seconds, remaining_s=seconds)
        if task is not None:
            console.print(f"task {task.id}: {task.prompt}")
        with_profile = f" with profile {chosen_profile}" if chosen_profile else ""
        console.print(f"running {loaded.path} under a {seconds:g}s deadline{with_profile}...")
        with Live(live.render(), console=console, refresh_per_second=10, transient=False) as view:

            def on_event(event: RunEvent) -> None:
                live.on_event(event)
                view.update(live.render())

            runtime = Runtime(endpoints=specs, latency=latency)
            result = await runtime.run(
                loaded.graph, graph_in, deadline=seconds, profile=chosen_profile,
                policy=policy, graph_path=loaded.path,
                observer=RunObserver(
                    on_event=on_event, task_seed=task_seed, judge=task_judge(task, loaded)
                ),
            )  # fmt: skip
            live.remaining_s = max(0.0, seconds - result.elapsed_s)
            view.update(live.render())
    await flush_traces_async()  # the trace file named below is whole (bounded wait, off the loop)
    answer_of = loaded.optional("answer_of")
    answer = answer_of(result.state) if answer_of else None
    console.print(_calls_table(result))
    console.print(_nodes_table(result))
    verdict = ""
    if task is not None:
        correct = answer is not None and is_correct(task, str(answer))
        verdict = f" (expected {task.answer}: {'correct' if correct else 'wrong'})"
    console.print(f"answer: [bold]{answer}[/]{verdict}")
    inside = "inside" if result.overshoot_s == 0 else f"over by {result.overshoot_s * 1000:.0f} ms"
    flag = f"[red]degraded[/]: {result.reason}" if result.degraded else "not degraded"
    console.print(f"elapsed {result.elapsed_s:.3f}s of {seconds:g}s ({inside}); {flag}")
    if result.trace_file is not None:
        console.print(f"trace: {result.trace_file} (agentrt trace view {result.trace_id})")
    return result


async def _latency(
    calibration: Path | None, settings: Settings, specs: list[EndpointSpec], console: Console
) -> dict[str, LatencyModel] | None:
    """The pool's latency models as ``resolve_latency`` chooses them (``--calibration``,
    AGENTRT_CALIBRATION, the fingerprint's cached calibration, a quick one measured
    now on an uncalibrated local pool, the prior); says which was used."""
    async with EndpointPool(specs, health_interval_s=0) as pool:
        choice = await resolve_latency(
            pool, settings=settings, explicit=calibration, announce=console.print
        )
    console.print(f"latency: {choice.describe()}", highlight=False, soft_wrap=True)
    return None if choice.models is None else dict(choice.models)
