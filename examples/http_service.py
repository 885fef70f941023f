"""An HTTP endpoint with an SLA per request: each request says how long it may take.

    python examples/http_service.py            # serves on 127.0.0.1:8080
    curl -s localhost:8080/solve -H 'content-type: application/json' \
      -d '{"problem": "Start with 3. Add 4. What is the result?", "sla_ms": 4000}'

One :class:`agentrt.Runtime` is opened at start-up and shared by every
request: its pool (AGENTRT_ENDPOINTS, else the local pool), the latency models
of that pool (its calibration, measured at start-up when there is none) and
what every call teaches them. Each request runs graphs/math.py under its own
end-to-end deadline and always answers by it (plus a small margin): degraded
answers say so. Uses FastAPI
and uvicorn, which the `local` extra already installs (vLLM needs them).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

import agentrt
from agentrt import ConfigurationError

GRAPH = agentrt.load_graph("graphs/math.py:graph")


class SolveRequest(BaseModel):
    problem: str = Field(examples=["Start with 3. Add 4. Then add 2. What is the result?"])
    sla_ms: int = Field(default=8000, gt=0, le=120_000)


class SolveResponse(BaseModel):
    answer: str | None
    degraded: bool
    reason: str | None
    elapsed_ms: float
    llm_calls: int


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with agentrt.Runtime() as runtime:
        app.state.runtime = runtime
        yield


app = FastAPI(title="agentrt math service", lifespan=lifespan)


@app.post("/solve")
async def solve(request: SolveRequest) -> SolveResponse:
    try:
        result = await app.state.runtime.run(
            GRAPH.graph,
            {"problem": request.problem},
            deadline=request.sla_ms / 1000,
            profile="budgets/math.toml",
        )
    except (ConfigurationError, ValueError) as exc:  # bad input, or a problem the graph can't parse
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return SolveResponse(
        answer=GRAPH.module.answer_of(result.state),
        degraded=result.degraded,
        reason=result.reason,
        elapsed_ms=round(result.elapsed_s * 1000, 1),
        llm_calls=len(result.calls),
    )


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=8080)
