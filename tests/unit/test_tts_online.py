"""The online latency correction: convergence, forgetting, uncertainty, censoring,
the stream adapter, and an executor that learns between two calls (fake clock)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentrt.core._clock import Clock, FakeClock
from agentrt.core._errors import ConfigurationError
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.pool._protocol import ChatRequest
from agentrt.pool._stream import BranchRecord, ChatStream
from agentrt.tracing import ChatSpans, use_tracer_provider
from agentrt.tracing._attributes import AGENTRT
from agentrt.tts import (
    LatencyModel,
    LatencyObservation,
    OnlineLatency,
    TTSConfig,
    TTSExecutor,
    stream_observations,
)
from agentrt.tts._accuracy import AccuracyModel
from agentrt.tts._executor import CallModels, estimate_prompt_tokens
from agentrt.tts._length import LengthModel
from agentrt.tts._planner import PlanInputs, SearchSpace, predict
from tests.unit.vllm_double import FakeCluster, FakeVLLM, sse, token_chunk, usage_chunk

PRIOR = LatencyModel.prior("plain")
PER_TOKEN_S = PRIOR.per_token_s(1)


def noisy(truth: float, n: int, *, sd: float = 0.1, seed: int = 0) -> list[float]:
    """``n`` readings of a true factor with log-normal noise ``sd`` (seeded)."""
    rng = random.Random(seed)
    return [truth * math.exp(rng.gauss(0.0, sd)) for _ in range(n)]


def per_token(online: OnlineLatency, factor: float, *, censored: bool = False) -> None:
    online.observe(
        LatencyObservation("plain", "per_token", factor * PER_TOKEN_S, PER_TOKEN_S, censored)
    )


@pytest.mark.parametrize("truth", [5.0, 0.2], ids=["prior-5x-too-fast", "prior-5x-too-slow"])
def test_converges_from_a_prior_five_times_off(truth: float) -> None:
    online = OnlineLatency()
    readings = noisy(truth, 12, sd=0.1)
    errors = []
    for factor in readings:
        per_token(online, factor)
        errors.append(abs(online.state("plain").per_token_factor / truth - 1.0))
    # The first reading is a drift: the estimate jumps to the new level at once,
    # and stays within 15% of the truth from the second reading on.
    assert online.state("plain").drifts >= 1
    assert max(errors[1:]) < 0.15, errors
    assert errors[-1] < 0.10


def test_without_evidence_the_prior_is_the_calibration() -> None:
    state = OnlineLatency().state("plain")
    assert state.ttft_factor == state.per_token_factor == 1.0
    assert state.observations == 0 and state.uncertainty == pytest.approx(0.15)
    assert OnlineLatency().corrected({"plain": PRIOR}) == {"plain": PRIOR}


def test_a_step_change_is_followed_both_ways() -> None:
    online = OnlineLatency()
    for factor in noisy(1.0, 30, seed=1):
        per_token(online, factor)
    assert online.state("plain").per_token_factor == pytest.approx(1.0, rel=0.1)
    drifts = online.state("plain").drifts
    for factor in noisy(3.0, 3, seed=2):  # the machine slows down 3x
        per_token(online, factor)
    assert online.state("plain").per_token_factor == pytest.approx(3.0, rel=0.15)
    for factor in noisy(1.0, 3, seed=3):  # and speeds up again
        per_token(online, factor)
    assert online.state("plain").per_token_factor == pytest.approx(1.0, rel=0.15)
    assert online.state("plain").drifts >= drifts + 2


def test_small_changes_are_smoothed_not_jumped_to() -> None:
    online = OnlineLatency()
    for factor in noisy(1.0, 30, seed=4):
        per_token(online, factor)
    per_token(online, 1.2)  # within the noise: a partial move, no drift
    state = online.state("plain")
    assert 1.0 < state.per_token_factor < 1.2 and state.drifts == 0


def test_the_uncertainty_shrinks_with_evidence() -> None:
    online = OnlineLatency()
    sds = [online.state("plain").per_token_sd]
    for factor in noisy(2.0, 20, sd=0.05, seed=5):
        per_token(online, factor)
        sds.append(online.state("plain").per_token_sd)
    assert sds[1] <= sds[0] and sds[5] < sds[1] and sds[-1] < sds[5]
    assert sds[-1] < 0.5 * sds[0]
    # Forgetting: the uncertainty never reaches zero.
    assert sds[-1] > 0


def test_a_censored_reading_pushes_the_estimate_up() -> None:
    online = OnlineLatency()
    # Cut before its first token after 20x the predicted TTFT: TTFT is at least that.
    online.observe(LatencyObservation("plain", "ttft", 1.0, 0.05, censored=True))
    assert online.state("plain").ttft_factor >= 20.0
    # A bound under the estimate says nothing.
    before = online.state("plain")
    online.observe(LatencyObservation("plain", "ttft", 0.05, 0.05, censored=True))
    assert online.state("plain") == before


def test_a_mild_censored_reading_moves_the_estimate_past_the_bound() -> None:
    online = OnlineLatency()
    per_token(online, 1.1, censored=True)
    assert online.state("plain").per_token_factor > 1.1**0.5
    assert online.state("plain").per_token_factor > 1.0


def test_endpoints_are_tracked_beside_their_group() -> None:
    online = OnlineLatency()
    online.observe(LatencyObservation("plain", "per_token", 0.1, 0.02, url="http://a:1"))
    assert online.state("plain", "http://a:1").per_token_factor == pytest.approx(
        online.state("plain").per_token_factor
    )
    assert online.state("plain", "http://b:1").observations == 0
    assert online.state("spec").observations == 0


def test_bad_settings_and_readings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="noise_sd"):
        OnlineLatency(noise_sd=0)
    with pytest.raises(ConfigurationError, match="noise_gain"):
        OnlineLatency(noise_gain=2.0)
    with pytest.raises(ConfigurationError, match="actual_s"):
        LatencyObservation("plain", "ttft", -1.0, 0.1)


readings = st.lists(
    st.tuples(
        st.sampled_from(["ttft", "per_token"]),
        st.floats(min_value=1e-3, max_value=1e3),
        st.booleans(),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(readings=readings, q=st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_predictions_stay_positive_and_monotone(
    readings: list[tuple[Any, float, bool]], q: float
) -> None:
    online = OnlineLatency()
    for quantity, factor, censored in readings:
        online.observe(LatencyObservation("plain", quantity, factor * 0.05, 0.05, censored))
    inputs = PlanInputs(
        slice_s=10.0, prompt_tokens=20, latency_models=online.corrected({"plain": PRIOR}),
        length_model=LengthModel(), accuracy_model=AccuracyModel(), sla_quantile=q,
        latency_sd=online.spreads(["plain"]), space=SearchSpace(groups=("plain",)),
    )  # fmt: skip
    previous = 0.0
    for n in (1, 2, 4, 8, 16, 32):
        config = TTSConfig("majority", n, temperature=0.7, max_tokens=64) if n > 1 else (
            TTSConfig("single", 1, max_tokens=64))  # fmt: skip
        latency = predict(config, inputs).latency_quantile_s
        assert math.isfinite(latency) and latency > 0 and latency >= previous
        previous = latency
    previous = 0.0
    for max_tokens in (8, 32, 128, 512):
        latency = predict(TTSConfig("single", 1, max_tokens=max_tokens), inputs).latency_quantile_s
        assert latency > 0 and latency >= previous
        previous = latency


# -- the stream adapter -------------------------------------------------------------


def stream_of(n: int, clock: FakeClock) -> ChatStream:
    request = ChatRequest(
        messages=[{"role": "user", "content": "hi"}], n=n, max_tokens=16, temperature=0.7
    )
    return ChatStream(
        response=httpx.Response(200), request=request, url="http://a.test:8000",
        clock=clock, started_at=clock.now(),
    )  # fmt: skip


def tokens(branch: BranchRecord, times: list[float]) -> None:
    for at in times:
        branch.first_token_at = branch.first_token_at if branch.first_token_at else at
        branch.token_times.append(at)
        branch.tokens += 1


def test_a_finished_stream_gives_ttft_and_per_token_readings() -> None:
    clock = FakeClock()
    stream = stream_of(2, clock)
    t0 = stream.started_at
    for branch in stream.branches.values():
        tokens(branch, [t0 + 0.5 + 0.1 * k for k in range(5)])
        branch.finish_reason, branch.finished_at = "stop", t0 + 0.9
    stream.closed_at = t0 + 0.9
    got = {o.quantity: o for o in stream_observations(stream, PRIOR, load=2, prompt_tokens=10)}
    assert not got["ttft"].censored and got["ttft"].actual_s == pytest.approx(0.5)
    assert got["ttft"].predicted_s == pytest.approx(PRIOR.ttft.predict(10, 3))
    assert got["per_token"].actual_s == pytest.approx(0.1)
    assert got["per_token"].predicted_s == pytest.approx(PRIOR.per_token_s(4))
    assert got["ttft"].url == "http://a.test:8000"


def test_a_stream_cut_before_its_first_token_is_a_censored_ttft() -> None:
    clock = FakeClock()
    stream = stream_of(4, clock)
    stream.closed_at = stream.started_at + 2.0
    (reading,) = stream_observations(stream, PRIOR, prompt_tokens=10)
    assert reading.quantity == "ttft" and reading.censored and reading.actual_s == 2.0


def test_a_broken_stream_gives_no_censored_readings() -> None:
    from agentrt.core._errors import EndpointUnavailable

    clock = FakeClock()
    stream = stream_of(1, clock)
    stream.closed_at = stream.started_at + 2.0
    stream.error = EndpointUnavailable("http://a.test:8000", "reset")
    assert stream_observations(stream, PRIOR) == []


# -- the executor learns between calls ------------------------------------------------

SLOWDOWN = 5.0
ANSWER = ["The", " answer", " is", " 7", ".", " It", " is", " 7"]  # 8 tokens a branch


class SlowVLLM(FakeVLLM):
    """A server ``SLOWDOWN`` times slower than the prior latency model, on a clock:
    TTFT and every decode round of ``n`` branches take 5x what the prior predicts."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self._timed = clock

    async def _chat(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        n = int(body.get("n", 1))
        prompt = estimate_prompt_tokens(body["messages"])
        ttft_s = SLOWDOWN * PRIOR.ttft.predict(prompt, n - 1)
        step_s = SLOWDOWN * PRIOR.per_token_s(n)
        clock = self._timed

        async def parts() -> AsyncIterator[bytes]:
            await clock.sleep(ttft_s)
            for position, word in enumerate(ANSWER):
                if position:
                    await clock.sleep(step_s)
                last = position == len(ANSWER) - 1
                for index in range(n):
                    yield sse(token_chunk(index, word, "stop" if last else None))
            yield sse(usage_chunk(prompt, n * len(ANSWER)))
            yield sse("[DONE]")

        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Stream(parts())
        )


class _Stream(httpx.AsyncByteStream):
    def __init__(self, parts: AsyncIterator[bytes]) -> None:
        self._parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._parts:
            yield part

    async def aclose(self) -> None:
        await self._parts.aclose()  # type: ignore[attr-defined]


def slow_executor(
    pool: EndpointPool, clock: FakeClock, online: OnlineLatency | None, **options: Any
) -> TTSExecutor:
    space = SearchSpace(
        strategies=("single", "majority"),
        n_choices=(1, 2, 4, 8, 16, 32),
        groups=("plain",),
        max_tokens_choices=(16,),
    )
    length = LengthModel.from_samples([len(ANSWER)] * 20)
    return TTSExecutor(
        pool,
        clock=clock,
        models=CallModels(latency={"plain": PRIOR}, length=length),
        space=space,
        hedge=False,
        online=online,
        **options,
    )


MESSAGES = [{"role": "user", "content": "What is 3 plus 4?"}]
SLICE_S = 2.0


@pytest.mark.parametrize("learn", [True, False], ids=["online", "static"])
async def test_by_the_second_call_the_plan_fits_a_five_times_slower_server(learn: bool) -> None:
    clock = FakeClock(autojump=True)
    cluster = FakeCluster(a=SlowVLLM(clock))
    specs = [EndpointSpec(url=cluster.url("a"))]
    online = OnlineLatency() if learn else None
    async with EndpointPool(
        specs, transport=cluster.transport, health_interval_s=0, clock=clock
    ) as pool:
        executor = slow_executor(pool, clock, online)
        first = await executor.run(MESSAGES, slice_s=SLICE_S)
        second = await executor.run(MESSAGES, slice_s=SLICE_S)
    # The prior plans 32 branches it believes take ~0.6 s (p95, widened): they need ~2.1 s.
    assert first.config is not None and first.config.n == 32
    assert first.degraded and "slice ended" in (first.degraded_reason or "")
    if not learn:
        assert second.config == first.config and second.degraded  # the same mistake
        assert second.online is None
        return
    assert first.online is not None and first.online.observations == 0
    assert second.online is not None and second.online.observations >= 2
    assert second.online.per_token_factor == pytest.approx(SLOWDOWN, rel=0.15)
    assert second.online.ttft_factor == pytest.approx(SLOWDOWN, rel=0.15)
    assert second.config is not None and second.config.n < first.config.n
    assert not second.degraded, second.degraded_reason
    assert second.answer is not None and second.answer.key == "7"
    assert second.latency_s <= SLICE_S
    assert second.predicted_latency_s is not None and second.predicted_latency_s <= SLICE_S
    assert second.latency_s <= second.predicted_latency_s  # widened: a conservative plan


async def test_the_chat_span_carries_the_correction_the_plan_used() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    clock = FakeClock(autojump=True)
    cluster = FakeCluster(a=SlowVLLM(clock))
    specs = [EndpointSpec(url=cluster.url("a"))]
    with use_tracer_provider(provider):
        async with EndpointPool(
            specs, transport=cluster.transport, health_interval_s=0, clock=clock
        ) as pool:
            executor = slow_executor(pool, clock, OnlineLatency(), observer=ChatSpans())
            for _ in range(2):
                await executor.run(MESSAGES, slice_s=SLICE_S)
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]
    first, second = (dict(s.attributes or {}) for s in chats)
    assert first[AGENTRT.ONLINE_PER_TOKEN_FACTOR] == 1.0
    assert first[AGENTRT.ONLINE_OBSERVATIONS] == 0
    assert first[AGENTRT.ONLINE_UNCERTAINTY] == pytest.approx(0.15)
    assert second[AGENTRT.ONLINE_PER_TOKEN_FACTOR] == pytest.approx(SLOWDOWN, rel=0.15)
    assert second[AGENTRT.ONLINE_TTFT_FACTOR] == pytest.approx(SLOWDOWN, rel=0.15)
    assert second[AGENTRT.ONLINE_OBSERVATIONS] == 2 and second[AGENTRT.ONLINE_DRIFTS] == 2
    assert second[AGENTRT.WITHIN_SLICE] is True and second[AGENTRT.DEGRADED] is False


# -- by concurrency ---------------------------------------------------------------------


def _band_readings(online: OnlineLatency, true_factor: dict[int, float], rounds: int) -> None:
    """Per-token readings at each concurrency, ``true_factor[c]`` times the calibration."""
    from agentrt.tts._online import LatencyObservation

    for _ in range(rounds):
        for concurrency, factor in true_factor.items():
            online.observe(
                LatencyObservation("plain", "per_token", 0.02 * factor, 0.02,
                                   concurrency=float(concurrency))
            )  # fmt: skip


def test_a_calibration_wrong_about_how_speed_grows_with_n_is_corrected_per_band() -> None:
    # Calibrated 2x slower from N=1 to 16; the machine is 8x slower (bf16 without
    # native bf16): 2x the calibration at N=1, 8x at N=16. One factor cannot fit both.
    from agentrt.tts._curve import Curve
    from agentrt.tts._latency import LatencyModel, TTFTModel

    model = LatencyModel("plain", TTFTModel(0.1), Curve.of([(1, 0.02), (16, 0.04)]))
    online = OnlineLatency()
    _band_readings(online, {1: 2.0, 16: 8.0}, rounds=15)
    corrected = online.corrected({"plain": model})["plain"]
    assert corrected.per_token_s(1) == pytest.approx(2.0 * model.per_token_s(1), rel=0.15)
    assert corrected.per_token_s(16) == pytest.approx(8.0 * model.per_token_s(16), rel=0.15)
    # An unseen concurrency between the bands seen lies between their corrections.
    assert corrected.per_token_s(1) < corrected.per_token_s(4) < corrected.per_token_s(16)
    bands = {(q, c) for q, c, _, _ in online.band_states("plain")}
    assert bands == {("per_token", 1), ("per_token", 16)}


def test_readings_without_a_concurrency_only_move_the_group_factor() -> None:
    from agentrt.tts._online import LatencyObservation

    online = OnlineLatency()
    for _ in range(10):
        online.observe(LatencyObservation("plain", "ttft", 0.3, 0.1))
    assert online.correction("plain") is None
    assert online.state("plain").ttft_factor == pytest.approx(3.0, rel=0.1)


@settings(max_examples=60)
@given(
    factors=st.dictionaries(
        st.sampled_from([1, 2, 4, 8, 16, 32]), st.floats(0.05, 20.0), min_size=1, max_size=6
    ),
    ttft_per_load=st.floats(0.0, 0.5),
)
def test_corrected_predictions_stay_positive_and_monotone_in_n_and_tokens(
    factors: dict[int, float], ttft_per_load: float
) -> None:
    from agentrt.tts._config import TTSConfig
    from agentrt.tts._curve import Curve
    from agentrt.tts._latency import LatencyModel, TTFTModel
    from agentrt.tts._length import LengthModel
    from agentrt.tts._online import LatencyObservation

    model = LatencyModel(
        "plain", TTFTModel(0.1, 0.001, ttft_per_load), Curve.of([(1, 0.02), (8, 0.03), (16, 0.06)])
    )
    online = OnlineLatency()
    for _ in range(5):
        for concurrency, factor in factors.items():
            for quantity in ("ttft", "per_token"):
                online.observe(LatencyObservation("plain", quantity, factor, 1.0,  # type: ignore[arg-type]
                                                  concurrency=float(concurrency)))  # fmt: skip
    corrected = online.corrected({"plain": model})["plain"]
    lengths = LengthModel.from_quantiles(20, 40)
    previous = 0.0
    for n in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32):
        config = (
            TTSConfig("majority", n, max_tokens=64, temperature=0.7)
            if n > 1
            else TTSConfig("single", 1, max_tokens=64)
        )
        latency = corrected.predict_mean(config, 50, lengths)
        assert latency > 0 and latency >= previous - 1e-12, (n, latency, previous)
        previous = latency
    short = corrected.predict_mean(TTSConfig("single", 1, max_tokens=16), 50, lengths)
    long = corrected.predict_mean(TTSConfig("single", 1, max_tokens=64), 50, lengths)
    assert 0 < short <= long
