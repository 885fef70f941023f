"""Calibrate the latency models against the live pool.

For every endpoint group and N in {1, 2, 4, 8, 16} it sends one request with N
branches that must each produce exactly ``tokens`` tokens (vLLM's
``ignore_eos``), and records time to first token and the per-token decode time
each branch saw; a long prompt adds TTFT-by-prompt-length points; for a
speculative group the ``vllm:spec_decode_*`` counters give the acceptance rate
at each N. The measurements fit one :class:`LatencyModel` per group.

This is where paper 1's observation shows on our hardware: per-token time grows
far slower than N (small-batch decoding is memory-bound), and the speculative
speedup changes with N.
"""

from __future__ import annotations

import statistics
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentrt.core._errors import ConfigurationError, ProfileError
from agentrt.pool._pool import EndpointPool
from agentrt.pool._protocol import ChatRequest
from agentrt.pool._stream import ChatStream
from agentrt.tts._curve import Curve
from agentrt.tts._latency import LatencyModel, SpeculativeModel

__all__ = [
    "CalibrationPlan",
    "Measurement",
    "calibrate",
    "fit_models",
    "load_latency_models",
    "measure",
]

SHORT_PROMPT = "Count from one upwards, one number per line: 1, 2, 3,"
LONG_PROMPT = (
    "Here is a list of facts. "
    + " ".join(f"Fact {i}: the number {i} plus {i} equals {2 * i}." for i in range(1, 60))
    + " Now continue the list with the next facts in the same format."
)


@dataclass(frozen=True)
class CalibrationPlan:
    """What to measure. ``quick`` is a few minutes on 2 cores; the full plan
    uses longer outputs and repeats each point."""

    ns: tuple[int, ...] = (1, 2, 4, 8, 16)
    tokens: int = 128
    repeats: int = 3
    long_prompt: bool = True
    seed: int = 0

    @classmethod
    def quick(cls) -> CalibrationPlan:
        return cls(tokens=48, repeats=1)

    @classmethod
    def auto(cls) -> CalibrationPlan:
        """What ``agentrt up`` and the first run on an uncalibrated local pool
        measure: N in 1, 4, 16 (the ends and the middle of the decode curve), 24
        tokens, one repeat, plus the long-prompt TTFT point; about a minute per
        group on 2 cores at most (docs/deployment.md has the measured time)."""
        return cls(ns=(1, 4, 16), tokens=24, repeats=1)

    def __post_init__(self) -> None:
        if not self.ns or any(n < 1 for n in self.ns):
            raise ConfigurationError(f"CalibrationPlan.ns must be positive, got {self.ns}")
        if self.tokens < 4:
            raise ConfigurationError(f"CalibrationPlan.tokens must be >= 4, got {self.tokens}")
        if self.repeats < 1:
            raise ConfigurationError(f"CalibrationPlan.repeats must be >= 1, got {self.repeats}")


@dataclass(frozen=True)
class Measurement:
    """One request's timings: ``n`` branches of ``tokens`` tokens on ``group``."""

    group: str
    n: int
    prompt_tokens: int
    tokens: int
    ttft_s: float
    per_token_s: float
    wall_s: float
    drafts: float = 0.0
    draft_tokens: float = 0.0
    accepted_tokens: float = 0.0

    @property
    def throughput_tok_s(self) -> float:
        return self.n * self.tokens / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def acceptance(self) -> float | None:
        """Share of proposed draft tokens the target accepted, if any were proposed."""
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens > 0 else None


_SPEC_COUNTERS = (
    "vllm:spec_decode_num_drafts_total",
    "vllm:spec_decode_num_draft_tokens_total",
    "vllm:spec_decode_num_accepted_tokens_total",
)


async def measure(
    pool: EndpointPool, group: str, n: int, *, tokens: int, prompt: str, seed: int
) -> Measurement:
    """Run one calibration request on ``group`` and return its timings."""
    endpoint = pool.choose(group)
    client = pool.client(endpoint)
    before = await client.metrics()
    request = ChatRequest(
        messages=[{"role": "user", "content": prompt}],
        n=n,
        max_tokens=tokens,
        temperature=0.7 if n > 1 else 0.0,
        seed=seed,
        extra={"ignore_eos": True, "min_tokens": tokens},
    )
    async with pool.stream(request, group=group) as stream:
        await stream.collect()
    after = await client.metrics()
    deltas = [after.get(k, 0.0) - before.get(k, 0.0) for k in _SPEC_COUNTERS]
    return Measurement(
        group=group,
        n=n,
        prompt_tokens=stream.prompt_tokens or 0,
        tokens=tokens,
        ttft_s=_median_ttft(stream),
        per_token_s=_median_per_token(stream),
        wall_s=_wall(stream),
        drafts=deltas[0],
        draft_tokens=deltas[1],
        accepted_tokens=deltas[2],
    )


def _median_ttft(stream: ChatStream) -> float:
    return statistics.median(
        b.first_token_at - stream.started_at
        for b in stream.branches.values()
        if b.first_token_at is not None
    )


def _median_per_token(stream: ChatStream) -> float:
    rates = [
        (b.token_times[-1] - b.first_token_at) / (b.tokens - 1)
        for b in stream.branches.values()
        if b.first_token_at is not None and b.tokens > 1
    ]
    if not rates:
        raise ConfigurationError("calibration request produced no multi-token branch")
    return statistics.median(rates)


def _wall(stream: ChatStream) -> float:
    ends = [b.finished_at for b in stream.branches.values() if b.finished_at is not None]
    return max(ends) - stream.started_at if ends else 0.0


async def calibrate(
    pool: EndpointPool, plan: CalibrationPlan, groups: Sequence[str] | None = None
) -> list[Measurement]:
    """Measure every group in ``groups`` (default: all the pool has) per ``plan``."""
    groups = list(groups or pool.groups)
    measurements: list[Measurement] = []
    for group in groups:
        # Warm-up: the first request on a fresh server pays one-off costs.
        await measure(pool, group, 1, tokens=8, prompt=SHORT_PROMPT, seed=plan.seed)
        for repeat in range(plan.repeats):
            for n in plan.ns:
                measurements.append(
                    await measure(
                        pool, group, n, tokens=plan.tokens, prompt=SHORT_PROMPT,
                        seed=plan.seed + repeat,
                    )
                )  # fmt: skip
            if plan.long_prompt:
                measurements.append(
                    await measure(
                        pool, group, 1, tokens=8, prompt=LONG_PROMPT, seed=plan.seed + repeat
                    )
                )
    return measurements


def fit_models(
    measurements: Sequence[Measurement], speculative_tokens: dict[str, int] | None = None
) -> dict[str, LatencyModel]:
    """One latency model per group; a group with draft counters gets its acceptance curve."""
    speculative_tokens = speculative_tokens or {}
    models: dict[str, LatencyModel] = {}
    for group in sorted({m.group for m in measurements}):
        rows = [m for m in measurements if m.group == group]
        decode = [(m.n, m.per_token_s) for m in rows if m.tokens > 8]
        # Each branch is prefilled on its own: the other n - 1 count as load.
        ttft = [(m.prompt_tokens, m.n - 1, m.ttft_s) for m in rows]
        speculative = None
        accepted = [(m.n, m.acceptance) for m in rows if m.acceptance is not None]
        if accepted:
            by_n: dict[int, list[float]] = {}
            for n, rate in accepted:
                assert rate is not None
                by_n.setdefault(n, []).append(min(rate, 0.999))
            speculative = SpeculativeModel(
                speculative_tokens.get(group, 4),
                Curve.of([(n, statistics.median(v)) for n, v in by_n.items()], monotone=False),
            )
        models[group] = LatencyModel.fit(group, ttft, decode, speculative=speculative)
    return models


def table_rows(measurements: Sequence[Measurement]) -> list[dict[str, object]]:
    """Per group and N: median per-token time, its ratio to N=1, throughput, acceptance."""
    rows: list[dict[str, object]] = []
    for group in sorted({m.group for m in measurements}):
        decode = [m for m in measurements if m.group == group and m.tokens > 8]
        base = statistics.median(m.per_token_s for m in decode if m.n == min(x.n for x in decode))
        for n in sorted({m.n for m in decode}):
            at_n = [m for m in decode if m.n == n]
            per_token = statistics.median(m.per_token_s for m in at_n)
            rates = [m.acceptance for m in at_n if m.acceptance is not None]
            rows.append(
                {
                    "group": group,
                    "n": n,
                    "per_token_ms": round(per_token * 1000, 2),
                    "vs_n1": round(per_token / base, 2),
                    "throughput_tok_s": round(
                        statistics.median(m.throughput_tok_s for m in at_n), 1
                    ),
                    "ttft_ms": round(statistics.median(m.ttft_s for m in at_n) * 1000, 1),
                    "acceptance": round(statistics.median(rates), 3) if rates else None,
                }
            )
    return rows


def speedup_rows(models: dict[str, LatencyModel], ns: Sequence[int]) -> list[dict[str, object]]:
    """Measured speculative speedup over the plain group at each N."""
    plain = models.get("plain")
    rows: list[dict[str, object]] = []
    if plain is None:
        return rows
    for group, model in models.items():
        if model.speculative is None:
            continue
        for n in ns:
            rows.append({"group": group, "n": n, "speedup": round(model.speedup_over(plain, n), 2)})
    return rows


def calibration_document(
    measurements: Sequence[Measurement],
    models: dict[str, LatencyModel],
    *,
    plan: CalibrationPlan,
    model_name: str,
    machine: str,
    fingerprint: Mapping[str, object] | None = None,
    wall_s: float | None = None,
) -> dict[str, object]:
    """The TOML document ``agentrt calibrate`` writes: models plus the raw points,
    and the fingerprint of the pool they were measured on (``[fingerprint]``)."""
    header: dict[str, object] = {
        "model": model_name,
        "machine": machine,
        "ns": list(plan.ns),
        "tokens": plan.tokens,
        "repeats": plan.repeats,
        "seed": plan.seed,
    }
    if wall_s is not None:
        header["wall_s"] = round(wall_s, 2)
    extra: dict[str, object] = {} if fingerprint is None else {"fingerprint": dict(fingerprint)}
    return {
        "calibration": header,
        **extra,
        "latency": {group: model.to_dict() for group, model in models.items()},
        "measurements": [
            {
                "group": m.group,
                "n": m.n,
                "prompt_tokens": m.prompt_tokens,
                "tokens": m.tokens,
                "ttft_s": round(m.ttft_s, 5),
                "per_token_s": round(m.per_token_s, 6),
                "wall_s": round(m.wall_s, 4),
                "draft_tokens": m.draft_tokens,
                "accepted_tokens": m.accepted_tokens,
            }
            for m in measurements
        ],
    }


def load_latency_models(path: Path) -> dict[str, LatencyModel]:
    """The ``[latency.<group>]`` tables of a file ``agentrt calibrate`` wrote."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProfileError(f"{path}: calibration file not found", path=str(path)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}", path=str(path)) from exc
    tables = document.get("latency")
    if not isinstance(tables, dict) or not tables:
        raise ProfileError(f"{path}: no [latency.<group>] table", path=str(path), field="latency")
    return {
        str(group): LatencyModel.from_dict(table, source=f"{path}: latency.{group}")
        for group, table in tables.items()
    }
