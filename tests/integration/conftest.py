"""A real local vLLM pool (CPU build), started once per test session.

Two plain servers and one ngram-speculative server on loopback. Pool state and
logs go to a temporary home; the prepared model is shared with `make model`.
``AGENTRT_TEST_POOL=reuse`` tests against a pool `agentrt up` already started.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentrt.core._settings import Settings
from agentrt.pool import EndpointPool, EndpointSpec, LocalPool, ServerRecord
from agentrt.tts import CalibrationPlan, LatencyModel, calibrate
from agentrt.tts._calibrate import fit_models


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


START_TIMEOUT_S = 900.0
"""Seconds the suite's three servers get to answer /health: about 30 s each on 2
fast cores, several minutes on a slow or throttled CPU."""


def local_settings(home: Path) -> Settings:
    return Settings(home=home, models=Settings().model_dir)


@pytest.fixture(scope="session")
def local_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerRecord]]:
    if os.environ.get("AGENTRT_TEST_POOL") == "reuse":
        # Development shortcut: test against the pool `agentrt up` started.
        running = LocalPool().alive()
        if running:
            yield running
            return
    pool = LocalPool(local_settings(tmp_path_factory.mktemp("agentrt-home")))
    # Start-up comes before any deadline: a slow machine gets all the time it needs.
    records = asyncio.run(
        pool.up(plain=2, spec=1, kv_cache_gib=1.0, max_model_len=2048, timeout_s=START_TIMEOUT_S)
    )
    try:
        yield records
    finally:
        asyncio.run(pool.down())


@pytest.fixture
def plain_specs(local_servers: list[ServerRecord]) -> list[EndpointSpec]:
    return [s.endpoint() for s in local_servers if s.group == "plain"]


@pytest.fixture
def all_specs(local_servers: list[ServerRecord]) -> list[EndpointSpec]:
    return [s.endpoint() for s in local_servers]


@pytest.fixture(scope="session")
def pool_latency(local_servers: list[ServerRecord]) -> dict[str, LatencyModel]:
    """This machine's latency models for the suite's pool, measured once per session
    with the quick plan ``agentrt up`` uses (``CalibrationPlan.auto()``): tests plan
    at the speed the servers run at here, never from a calibration file measured on
    another machine (the shipped prior was 4-6x too fast on an AVX2-only EPYC)."""

    async def measure() -> dict[str, LatencyModel]:
        async with EndpointPool([s.endpoint() for s in local_servers]) as pool:
            measurements = await calibrate(pool, CalibrationPlan.auto())
            draft = {e.spec.group: e.spec.draft_tokens or 4 for e in pool.endpoints
                     if e.spec.speculative}  # fmt: skip
            return fit_models(measurements, draft)

    return asyncio.run(measure())
