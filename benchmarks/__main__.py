"""``python -m benchmarks NAME [--quick]``: run one benchmark against the live pool.

The benchmarks are application code beside the library, so their command is
here and not in ``agentrt``: the library never imports them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from agentrt.core._errors import AgentrtError
from benchmarks.catalog import CATALOG
from benchmarks.command import DOCS_FILE, RESULTS_DIR, bench_command

__all__ = ["app", "main"]

_LISTING = "\n\n".join(f"[bold]{name}[/]: {escape(b.summary)}" for name, b in CATALOG.items())

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.command(
    help="Run benchmark NAME on the configured pool (else the local one); writes its "
    "JSON under benchmarks/results/, its plot and section into docs/BENCHMARKS.md.",
    epilog=f"Benchmarks:\n\n{_LISTING}",
    no_args_is_help=True,
)
def bench(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The benchmark to run (listed below).")
    ],
    quick: Annotated[bool, typer.Option(help="A few minutes on 2 cores.")] = False,
    tasks: Annotated[
        str, typer.Option(help="Task suite: a suite name or your own .jsonl file.")
    ] = "addition",
    seed: Annotated[int, typer.Option(help="Seed of the task suite and the branches.")] = 0,
    count: Annotated[
        int | None, typer.Option(help="Number of scored tasks, where a benchmark has tasks.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Directory for the result JSON.",
            show_default="benchmarks/results/",
        ),
    ] = None,
    docs: Annotated[
        Path | None,
        typer.Option(
            help="Markdown file for the section; the plots go beside it.",
            show_default="docs/BENCHMARKS.md",
        ),
    ] = None,
) -> None:
    console = Console()
    try:
        asyncio.run(
            bench_command(
                name,
                quick=quick,
                console=console,
                output_dir=output or RESULTS_DIR,
                docs=docs or DOCS_FILE,
                tasks=tasks,
                seed=seed,
                count=count,
            )
        )
    except AgentrtError as exc:
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from exc


def main() -> None:
    app()


if __name__ == "__main__":
    main()
