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
from agentrt.pool import EndpointSpec, LocalPool, ServerRecord


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


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
    records = asyncio.run(pool.up(plain=2, spec=1, kv_cache_gib=1.0, max_model_len=2048))
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
