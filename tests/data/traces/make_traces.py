"""Record the committed tuning traces: labelled runs of a small two-node workflow
on the local pool, with the executor's default (prior) models.

    .venv/bin/python tests/data/traces/make_traces.py --runs 24 -o tests/data/traces

Each run is an ``invoke_workflow arith`` span with a ``plan`` node (one greedy
call) and one to three ``solve`` visits (the planner picks the config for a
slice between 1 and 6 s); even runs use the plain group, odd runs the
speculative one. Run it with the local pool up (``agentrt up --spec-servers 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
from pathlib import Path

from agentrt.core._deadline import Deadline
from agentrt.pool import EndpointPool, LocalPool
from agentrt.tracing import (
    ChatSpans,
    TracingSettings,
    configure_tracing,
    expected_answer_scope,
    node_span,
    shutdown_tracing,
    workflow_span,
)
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import CallModels, TTSExecutor
from agentrt.tts._latency import LatencyModel
from agentrt.tts._planner import SearchSpace

GRAPH = "arith"


async def one_run(pool: EndpointPool, seed: int, group: str) -> None:
    rng = random.Random(seed)
    models = CallModels(latency={group: LatencyModel.prior(group)})
    space = SearchSpace(groups=(group,), n_choices=(1, 2, 4, 8), max_tokens_choices=(64,))
    executor = TTSExecutor(
        pool, models=models, space=space, sla_quantile=0.9, run_seed=seed, observer=ChatSpans()
    )
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    question = [{"role": "user", "content": f"What is {a} plus {b}?"}]
    deadline = Deadline.after(20)
    with workflow_span(GRAPH, deadline=deadline, task_seed=seed) as run:
        with node_span("plan", step=1):
            await executor.run(
                [{"role": "user", "content": f"Say which operation this needs: {a} plus {b}"}],
                slice_s=10,
                config=TTSConfig("single", 1, group=group, max_tokens=16),
            )
        correct = False
        for visit in range(rng.randint(1, 3)):
            with node_span("solve", step=2 + visit), expected_answer_scope(str(a + b)):
                result = await executor.run(question, slice_s=rng.uniform(1.0, 6.0))
            correct = result.answer is not None and result.answer.key == str(a + b)
        run.set_outcome(correct=correct)


async def main(runs: int, output: Path, first_seed: int) -> None:
    configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=output))
    try:
        async with EndpointPool(LocalPool().endpoints()) as pool:
            groups = sorted(pool.groups)
            for i in range(runs):
                seed = first_seed + i
                await one_run(pool, seed, groups[i % len(groups)])
                print(f"run {i + 1}/{runs} done")
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=Path("tests/data/traces"))
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.output, args.seed))
