"""Paper 2's probe on the real pool: collect sampled branches for addition tasks on
local vLLM servers, bootstrap labels, train, and plug the probe into the executor.

The figures it prints are the ones quoted in docs/tts.md ("Per-query probe").
"""

from __future__ import annotations

import pytest

from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tasks import single_step_addition
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import CallModels, TTSExecutor
from agentrt.tts._length import LengthModel
from agentrt.tts._planner import SearchSpace
from agentrt.tts.probe import (
    MiniLMEmbedder,
    ProbeAccuracy,
)
from agentrt.tuning.probe import (
    ProbeTraining,
    bootstrap_examples,
    collect_samples,
    task_messages,
    train_probe,
)

TASKS = 16
SAMPLES = 8
MAX_TOKENS = 48


async def test_probe_from_pool_samples_beats_a_constant_and_drives_the_planner(
    plain_specs: list[EndpointSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tasks = single_step_addition(seed=11, count=TASKS)
    async with EndpointPool(plain_specs) as pool:
        collected = await collect_samples(pool, tasks, SAMPLES, MAX_TOKENS, seed=5, concurrency=4)
    assert len(collected) == TASKS * 3  # caps 12, 24, 48
    full = [q for q in collected if q.max_tokens == MAX_TOKENS]
    single = sum(s.correct for q in full for s in q.samples) / (TASKS * SAMPLES)
    examples = bootstrap_examples(collected, seed=5)
    assert len(examples) == TASKS * 3 * 2 * 4 * 2  # x caps x strategies x N x groups

    embedder = MiniLMEmbedder()
    report = train_probe(examples, embedder, ProbeTraining(seed=0))
    metrics = report.metrics
    assert metrics is not None and metrics.split == "test"
    print(
        f"\nprobe: single-sample accuracy {single:.3f}; {len(examples)} rows; "
        f"train/cal/test queries {len(report.train_queries)}/{len(report.calibration_queries)}/"
        f"{len(report.test_queries)}; "
        f"platt a={report.probe.platt.a:.3f} b={report.probe.platt.b:.3f}"
        f"\n  test Brier raw {metrics.brier_raw:.4f}, calibrated {metrics.brier_calibrated:.4f}, "
        f"constant({report.constant:.3f}) {metrics.brier_constant:.4f}"
        f"\n  test ECE raw {metrics.ece_raw:.4f}, calibrated {metrics.ece_calibrated:.4f}, "
        f"constant {metrics.ece_constant:.4f}"
    )
    assert metrics.brier_calibrated <= metrics.brier_constant

    probe = ProbeAccuracy(report.probe, embedder)
    models = CallModels(per_query=probe.for_query)
    messages = task_messages(tasks[0])
    estimator = models.accuracy_for(messages)
    curve = [
        estimator.predict(TTSConfig("majority", n, max_tokens=MAX_TOKENS, temperature=0.7),
                          LengthModel())
        for n in (1, 2, 4, 8, 16)
    ]  # fmt: skip
    assert curve == sorted(curve) and all(0.0 <= v <= 1.0 for v in curve)

    space = SearchSpace(
        strategies=("majority", "best_of_n"), n_choices=(2, 4, 8),
        groups=("plain",), max_tokens_choices=(MAX_TOKENS,),
    )  # fmt: skip
    async with EndpointPool(plain_specs) as pool:
        executor = TTSExecutor(pool, models=models, space=space, run_seed=3)
        plan = executor.plan(messages, 30.0)
        assert plan.config is not None and plan.prediction is not None
        assert plan.prediction.accuracy == estimator.predict(plan.config, models.length)
        result = await executor.run(messages, slice_s=30.0)
    assert result.plan.config is not None
    print(f"  executor with the probe ran {result.plan.config.label}: answer "
          f"{result.answer.key if result.answer else None} (truth {tasks[0].answer})")  # fmt: skip
