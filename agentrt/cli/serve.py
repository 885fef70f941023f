"""``agentrt serve``: serve graphs over HTTP (the LangGraph Agent Protocol subset the
official clients use), every run under its own deadline (docs/serving.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from agentrt.core._errors import AgentrtError

__all__ = ["serve"]

err_console = Console(stderr=True)


def serve(
    graphs: Annotated[
        list[str], typer.Argument(help="Graphs to serve, by path: graphs/NAME.py:graph.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 2024,
    workers: Annotated[
        int, typer.Option(min=1, max=256, help="Worker processes (each its own Runtime).")
    ] = 1,
    checkpointer: Annotated[
        str | None,
        typer.Option(help="Where threads live: memory (default) or a postgresql:// URL."),
    ] = None,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Runs at once per worker; one more is a 503.")
    ] = 64,
) -> None:
    """Serve graphs over HTTP (LangGraph Agent Protocol), each run under its deadline.

    Clients: langgraph_sdk.get_client(url=...) and RemoteGraph. A run's deadline is the
    tightest of the agentrt-timeout header, context.deadline_s and
    config.configurable.deadline_s, else the graph's profile's."""
    from agentrt.serve import serve as run_server

    if workers > 1 and checkpointer in (None, "memory"):
        err_console.print(
            "[yellow]warning:[/] with --workers > 1 and the in-memory checkpointer, each "
            "worker keeps its own threads; use --checkpointer postgresql://... to share them",
            highlight=False,
        )
    try:
        run_server(
            graphs, host=host, port=port, workers=workers, checkpointer=checkpointer,
            max_in_flight=max_in_flight,
        )  # fmt: skip
    except AgentrtError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc
