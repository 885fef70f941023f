"""Which calibration a pool uses (explicit > AGENTRT_CALIBRATION > fingerprint cache >
prior), when a quick one is measured, and that the cache file is written atomically."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from agentrt.core._settings import DEFAULT_CALIBRATION, Settings
from agentrt.pool import EndpointPool, EndpointSpec, ServerRecord
from agentrt.pool._fingerprint import HostFacts
from agentrt.tts import _calibration_store as store
from agentrt.tts._calibrate import CalibrationPlan, Measurement
from agentrt.tts._calibration_store import (
    cache_path,
    choose_calibration,
    find_cached,
    measured_summary,
    pool_fingerprint_of,
    recorded_fingerprint,
    resolve_latency,
    should_auto_calibrate,
    write_atomic,
)

REPO = Path(__file__).parents[2]
PRIOR = REPO / DEFAULT_CALIBRATION
HOST = HostFacts(cpu_model="Test CPU", cpu_flags=("avx2",), threads=(("cpus", "2"),))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTRT_CALIBRATION", "AGENTRT_AUTO_CALIBRATE", "AGENTRT_PROJECT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(store, "fingerprint_pool", _with_host(store.fingerprint_pool))


def _with_host(real: Any) -> Any:
    def fingerprint(endpoints: Any, local_servers: Any = (), *, host: Any = None) -> Any:
        return real(endpoints, local_servers, host=host or HOST)

    return fingerprint


# -- the pure decisions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"explicit": "e", "environment": "v", "cached": "c", "prior": "p"}, "explicit"),
        ({"explicit": None, "environment": "v", "cached": "c", "prior": "p"}, "environment"),
        ({"explicit": None, "environment": None, "cached": "c", "prior": "p"}, "fingerprint"),
        ({"explicit": None, "environment": None, "cached": None, "prior": "p"}, "prior"),
        ({"explicit": None, "environment": None, "cached": None, "prior": None}, None),
    ],
)
def test_precedence_explicit_then_environment_then_fingerprint_then_prior(
    given: dict[str, str | None], expected: str | None
) -> None:
    paths = {k: None if v is None else Path(v) for k, v in given.items()}
    chosen = choose_calibration(**paths)
    assert (chosen and chosen[0]) == expected


@pytest.mark.parametrize(
    ("cached", "overridden", "auto", "local", "expected"),
    [
        (False, False, True, True, True),
        (True, False, True, True, False),  # one exists for the fingerprint
        (False, True, True, True, False),  # a file is given
        (False, False, False, True, False),  # AGENTRT_AUTO_CALIBRATE=0
        (False, False, True, False, False),  # a remote pool: opt-in only
    ],
)
def test_auto_calibration_only_for_an_uncalibrated_local_pool_with_auto_on(
    cached: bool, overridden: bool, auto: bool, local: bool, expected: bool
) -> None:
    decision = should_auto_calibrate(cached=cached, overridden=overridden, auto=auto, local=local)
    assert decision is expected


def test_the_environment_switch_reads_as_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().auto_calibrate is True
    monkeypatch.setenv("AGENTRT_AUTO_CALIBRATE", "0")
    assert Settings().auto_calibrate is False


# -- atomic write ---------------------------------------------------------------------


def test_write_atomic_replaces_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "cal" / "abc.toml"
    write_atomic(target, "first\n")
    write_atomic(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["abc.toml"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "abc.toml"
    write_atomic(target, "old\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["abc.toml"]


# -- resolution against a pool stand-in -----------------------------------------------


@dataclass
class _State:
    spec: EndpointSpec
    served_model: str | None = "smollm2-135m-instruct"
    version: str | None = "0.32.0"


@dataclass
class _Pool:
    endpoints: list[_State]


def _record(port: int = 40001) -> ServerRecord:
    return ServerRecord(
        name="plain-0", group="plain", pid=1, port=port, log_path="x.log", model_path="/m",
        served_model="smollm2-135m-instruct", dtype="float32", kv_cache_gib=2.0,
        launch_args=["--enforce-eager", "--dtype", "float32"],
    )  # fmt: skip


def _local_pool() -> tuple[EndpointPool, list[ServerRecord]]:
    record = _record()
    return cast(EndpointPool, _Pool([_State(record.endpoint())])), [record]


def _settings(tmp_path: Path, **kwargs: Any) -> Settings:
    return Settings(home=tmp_path / "home", project_dir=REPO, data_dir=None, **kwargs)


def _measurements(group: str = "plain") -> list[Measurement]:
    rows = []
    for n, per_token in ((1, 0.04), (4, 0.045), (16, 0.06)):
        rows.append(Measurement(group, n, 20, 24, 0.1 + 0.01 * n, per_token, 1.0 + n / 8))
    rows.append(Measurement(group, 1, 400, 8, 0.5, 0.04, 0.8))
    return rows


async def test_an_uncalibrated_local_pool_is_measured_once_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans: list[CalibrationPlan] = []

    async def fake_calibrate(pool: Any, plan: CalibrationPlan) -> list[Measurement]:
        plans.append(plan)
        return _measurements()

    monkeypatch.setattr(store, "calibrate", fake_calibrate)
    pool, records = _local_pool()
    settings = _settings(tmp_path)
    heard: list[str] = []
    first = await resolve_latency(
        pool, settings=settings, local_servers=records, announce=heard.append
    )
    assert first.kind == "measured" and plans == [CalibrationPlan.auto()]
    fingerprint = pool_fingerprint_of(pool, records)
    assert (
        first.path
        == cache_path(settings, fingerprint)
        == (tmp_path / "home" / "calibration" / f"{fingerprint.hash}.toml")
    )
    assert recorded_fingerprint(first.path) == fingerprint
    assert first.models is not None and set(first.models) == {"plain"}
    assert any("n=1: TTFT 110 ms, 40.0 ms/token" in line for line in heard)
    assert any("n=16:" in line for line in heard) and heard[-1].strip().startswith("measured in")
    document = tomllib.loads(first.path.read_text())
    assert document["calibration"]["ns"] == [1, 4, 16] and "wall_s" in document["calibration"]

    second = await resolve_latency(pool, settings=settings, local_servers=records)
    assert second.kind == "fingerprint" and second.path == first.path and len(plans) == 1
    assert "calibration for pool" in second.describe()


async def test_with_auto_calibration_off_the_prior_is_used_and_said(tmp_path: Path) -> None:
    pool, records = _local_pool()
    choice = await resolve_latency(
        pool, settings=_settings(tmp_path, auto_calibrate=False), local_servers=records
    )
    assert choice.kind == "prior" and choice.path == PRIOR
    assert "auto-calibration is off" in choice.describe() and "another machine" in choice.describe()


async def test_a_failed_calibration_falls_back_to_the_prior(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentrt.core._errors import EndpointUnavailable

    async def failing(pool: Any, plan: CalibrationPlan) -> list[Measurement]:
        raise EndpointUnavailable("http://127.0.0.1:40001", "server went away")

    monkeypatch.setattr(store, "calibrate", failing)
    pool, records = _local_pool()
    choice = await resolve_latency(pool, settings=_settings(tmp_path), local_servers=records)
    assert choice.kind == "prior" and "calibrating failed" in choice.reason


async def test_explicit_and_environment_files_win_and_are_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never(pool: Any, plan: CalibrationPlan) -> list[Measurement]:
        raise AssertionError("must not calibrate")

    monkeypatch.setattr(store, "calibrate", never)
    pool, records = _local_pool()
    mine = tmp_path / "mine.toml"
    mine.write_text(PRIOR.read_text())
    explicit = await resolve_latency(
        pool, settings=_settings(tmp_path), explicit=mine, local_servers=records
    )
    assert explicit.kind == "explicit" and explicit.path == mine
    from_env = await resolve_latency(
        pool, settings=_settings(tmp_path, calibration=mine), local_servers=records
    )
    assert from_env.kind == "environment" and "AGENTRT_CALIBRATION" in from_env.describe()


async def test_a_remote_pool_is_never_measured_but_uses_its_cached_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never(pool: Any, plan: CalibrationPlan) -> list[Measurement]:
        raise AssertionError("must not calibrate")

    monkeypatch.setattr(store, "calibrate", never)
    pool = cast(EndpointPool, _Pool([_State(EndpointSpec(url="http://gpu1:8000"), "qwen")]))
    settings = _settings(tmp_path)
    choice = await resolve_latency(pool, settings=settings, local_servers=[])
    assert choice.kind == "none" and choice.models is None and "agentrt calibrate" in choice.reason

    fingerprint = pool_fingerprint_of(pool, [])
    text = PRIOR.read_text()
    write_atomic(cache_path(settings, fingerprint), text)
    cached = await resolve_latency(pool, settings=settings, local_servers=[])
    assert cached.kind == "fingerprint" and cached.models is not None


def test_a_cached_calibration_of_a_larger_pool_is_found_for_a_smaller_one(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    plain = _record()
    spec = ServerRecord(
        **{**plain.__dict__, "name": "spec-1", "group": "spec", "port": 40002,
           "speculative": {"method": "ngram", "num_speculative_tokens": 4}},
    )  # fmt: skip
    both = pool_fingerprint_of(
        cast(EndpointPool, _Pool([_State(plain.endpoint()), _State(spec.endpoint())])),
        [plain, spec],
    )
    only_plain = pool_fingerprint_of(cast(EndpointPool, _Pool([_State(plain.endpoint())])), [plain])
    assert both.hash != only_plain.hash
    assert find_cached(settings, only_plain) is None
    # A prior without a fingerprint in the same folder is not a match.
    write_atomic(settings.calibration_dir / "local-pool.toml", PRIOR.read_text())
    assert find_cached(settings, only_plain) is None
    saved = cache_path(settings, both)
    write_atomic(saved, store.render_calibration({"fingerprint": both.to_dict()}, "# t\n"))
    assert find_cached(settings, only_plain) == saved
    assert find_cached(settings, both) == saved


def test_the_summary_names_ttft_and_per_token_time_at_the_ends_and_the_time_taken() -> None:
    lines = measured_summary(_measurements(), 12.34)
    assert lines == (
        "plain: n=1: TTFT 110 ms, 40.0 ms/token; n=16: TTFT 260 ms, 60.0 ms/token",
        "measured in 12.3 s",
    )


def test_status_shows_the_pool_fingerprint_and_whether_it_is_calibrated(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentrt.cli.app import app

    env = {"AGENTRT_ENDPOINTS": "http://127.0.0.1:9", "AGENTRT_HOME": str(tmp_path)}
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "pool fingerprint " in text and "no calibration for it" in text
    assert "agentrt calibrate" in text
