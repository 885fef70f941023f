"""Embed the pool in an application: one multi-branch call under a deadline.

    python examples/stream_branches.py "What is 6 plus 2?"

Uses AGENTRT_ENDPOINTS when set, else starts the local CPU pool for the call.
"""

from __future__ import annotations

import asyncio
import sys

from agentrt import Deadline
from agentrt.pool import ChatRequest, EndpointPool, pool_endpoints


async def main(question: str) -> None:
    request = ChatRequest(
        messages=[{"role": "user", "content": question}],
        n=8,
        max_tokens=48,
        temperature=0.7,
        seed=0,
    )
    async with pool_endpoints() as specs, EndpointPool(specs) as pool:
        deadline = Deadline.after(3.0)
        async with pool.stream(request, deadline=deadline) as stream:
            await stream.collect()
    for branch in stream.branches.values():
        state = branch.finish_reason or "cut at the deadline"
        print(f"branch {branch.index}: {branch.tokens:3d} tokens, {state:>18}: {branch.text!r}")
    print(f"{stream.completion_tokens} tokens in {deadline.elapsed():.2f}s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "What is 3 plus 4?"))
