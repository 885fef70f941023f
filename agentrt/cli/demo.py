"""The main job until the graph runner lands: one multi-branch call, streamed, with timings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from rich.console import Console
from rich.live import Live
from rich.table import Table

from agentrt.core._deadline import Deadline
from agentrt.pool._config import endpoints_from_env
from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._local import LocalPool, pool_endpoints
from agentrt.pool._pool import EndpointPool
from agentrt.pool._protocol import ChatRequest
from agentrt.pool._stream import ChatStream

__all__ = ["stream_demo"]


@contextlib.asynccontextmanager
async def _endpoints(keep: bool, console: Console) -> AsyncIterator[list[EndpointSpec]]:
    local = LocalPool()
    if keep and endpoints_from_env() is None and not local.alive():
        console.print("starting the local vLLM pool (kept running: `agentrt down` stops it)...")
        await local.up()
    async with pool_endpoints(announce=console.print) as specs:
        yield specs


def _table(stream: ChatStream) -> Table:
    table = Table(title=f"{stream.request.n} branches on {stream.url}")
    for column in ("branch", "tokens", "ttft s", "done s", "tok/s", "finish", "text (end)"):
        table.add_column(column, overflow="fold")
    for b in stream.branches.values():
        ttft = b.first_token_at - stream.started_at if b.first_token_at is not None else None
        end = b.finished_at or (b.token_times[-1] if b.token_times else None)
        done = end - stream.started_at if end is not None else None
        rate = (
            (b.tokens / (end - b.first_token_at))
            if (end and b.first_token_at and end > b.first_token_at)
            else None
        )
        table.add_row(
            str(b.index),
            str(b.tokens),
            f"{ttft:.3f}" if ttft is not None else "-",
            f"{done:.3f}" if done is not None else "-",
            f"{rate:.1f}" if rate is not None else "-",
            b.finish_reason or "running",
            b.text[-48:].replace("\n", " "),
        )
    return table


async def stream_demo(
    *, n: int, max_tokens: int, deadline_s: float, prompt: str, keep: bool, console: Console
) -> ChatStream:
    request = ChatRequest(
        messages=[{"role": "user", "content": prompt}],
        n=n,
        max_tokens=max_tokens,
        temperature=0.7 if n > 1 else 0.0,
        seed=0,
    )
    async with _endpoints(keep, console) as specs, EndpointPool(specs) as pool:
        deadline = Deadline.after(deadline_s, scope="demo")
        async with pool.stream(request, deadline=deadline) as stream:
            with Live(_table(stream), console=console, refresh_per_second=8) as live:
                async for _ in stream:
                    live.update(_table(stream))
        elapsed = deadline.elapsed()
        console.print(
            f"prompt tokens {stream.prompt_tokens}, completion tokens {stream.completion_tokens}, "
            f"wall {elapsed:.3f}s, {stream.completion_tokens / elapsed:.1f} tok/s aggregate, "
            f"{'cut by the deadline' if stream.cut_by_deadline else 'all branches finished'}"
        )
        return stream
