"""The planner: which config to run for one call, as a pure function of its inputs.

Two objectives over the same enumerated configs (strategy x N x endpoint
group x max_tokens):

* **deadline form** (paper 1): the highest predicted accuracy among configs
  whose latency at the SLA quantile fits the slice;
* **penalty form** (paper 2): the highest ``accuracy - lambda_T * tokens -
  lambda_L * latency`` (expected tokens, mean latency), among configs that fit.

Ties go to lower latency, then fewer tokens, then the config's own order, so
the same inputs always give the same plan. When not even the cheapest config
fits, the plan is a refusal: no config, and a reason saying by how much.
Paper 1's greedy (B, gamma) search is :mod:`agentrt.tts._greedy_search`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from statistics import NormalDist
from types import MappingProxyType
from typing import Literal

from agentrt.core._errors import ConfigurationError
from agentrt.pool._endpoint import PLAIN_GROUP, SPEC_GROUP
from agentrt.tts._accuracy import AccuracyEstimator
from agentrt.tts._config import STRATEGY_NAMES, StrategyName, TTSConfig
from agentrt.tts._latency import LatencyModel
from agentrt.tts._length import LengthModel

__all__ = [
    "DEFAULT_N_CHOICES",
    "Objective",
    "Plan",
    "PlanInputs",
    "Prediction",
    "SearchSpace",
    "plan_fallback",
    "plan_for_deadline",
    "plan_with_penalty",
    "predict",
]

DEFAULT_N_CHOICES = (1, 2, 4, 8, 16)
Objective = Literal["deadline", "penalty", "greedy"]
_SCORED: frozenset[StrategyName] = frozenset({"weighted", "best_of_n"})
_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True)
class SearchSpace:
    """The configs the planner may choose from.

    ``single`` is always n=1 greedy; the other strategies use each ``n >= 2``
    of ``n_choices`` at ``temperature``. ``beam`` is left out by default: it is
    slow and cannot stop early. ``greedy_only_groups`` get ``single`` only: their
    servers return wrong sampled output (see :func:`agentrt.pool.greedy_only_groups`).
    """

    strategies: tuple[StrategyName, ...] = ("single", "majority", "weighted", "best_of_n")
    n_choices: tuple[int, ...] = DEFAULT_N_CHOICES
    groups: tuple[str, ...] = (PLAIN_GROUP, SPEC_GROUP)
    max_tokens_choices: tuple[int, ...] = (256,)
    temperature: float = 0.7
    top_p: float = 1.0
    greedy_only_groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, values in (
            ("strategies", self.strategies),
            ("n_choices", self.n_choices),
            ("groups", self.groups),
            ("max_tokens_choices", self.max_tokens_choices),
        ):
            if not values:
                raise ConfigurationError(f"SearchSpace.{name} must not be empty")
        unknown = [s for s in self.strategies if s not in STRATEGY_NAMES]
        if unknown:
            raise ConfigurationError(f"SearchSpace.strategies: unknown {unknown}")
        if any(n < 1 for n in self.n_choices):
            raise ConfigurationError(f"SearchSpace.n_choices must be >= 1, got {self.n_choices}")
        if not self.temperature > 0.0:
            raise ConfigurationError(
                f"SearchSpace.temperature must be > 0 for sampled branches, got {self.temperature}"
            )

    def configs(self, groups: tuple[str, ...] | None = None) -> tuple[TTSConfig, ...]:
        """Every config of the space (restricted to ``groups`` when given), sorted."""
        chosen = self.groups if groups is None else tuple(g for g in self.groups if g in groups)
        found: set[TTSConfig] = set()
        for group in chosen:
            for max_tokens in self.max_tokens_choices:
                for strategy in self.strategies:
                    if strategy == "single":
                        found.add(TTSConfig("single", 1, group, max_tokens))
                        continue
                    if group in self.greedy_only_groups:
                        continue
                    for n in self.n_choices:
                        if n >= 2:
                            found.add(
                                TTSConfig(
                                    strategy, n, group, max_tokens, self.temperature, self.top_p
                                )
                            )
        return tuple(sorted(found))


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan depends on.

    ``load`` maps a group to the sequences already running there;
    ``scorer_latency_s`` is added to strategies that need a scorer
    (weighted, best-of-N) when that scorer costs time (a reward model).
    """

    slice_s: float
    prompt_tokens: int
    latency_models: Mapping[str, LatencyModel]
    length_model: LengthModel
    accuracy_model: AccuracyEstimator
    sla_quantile: float = 0.95
    load: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    siblings: int = 0
    """Parallel calls expected to run beside this one on the same group (a
    ``Send`` fan-out), each assumed to run the same config: they add their
    branches to the concurrency this call decodes at."""
    scorer_latency_s: float = 0.0
    space: SearchSpace = field(default_factory=SearchSpace)
    latency_sd: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per group, the log-space sds of the latency model's (TTFT, per-token)
    factors (:meth:`agentrt.tts.OnlineLatency.spreads`): the SLA quantile is
    planned with both scaled by ``exp(z_q * sd)``, wider while the model is unsure."""

    def __post_init__(self) -> None:
        if math.isnan(self.slice_s) or self.slice_s < 0:
            raise ConfigurationError(f"PlanInputs.slice_s must be >= 0, got {self.slice_s}")
        if self.prompt_tokens < 0:
            raise ConfigurationError(
                f"PlanInputs.prompt_tokens must be >= 0, got {self.prompt_tokens}"
            )
        if math.isnan(self.sla_quantile) or not 0.0 < self.sla_quantile < 1.0:
            raise ConfigurationError(
                f"PlanInputs.sla_quantile must be in (0, 1), got {self.sla_quantile}"
            )
        if self.siblings < 0:
            raise ConfigurationError(f"PlanInputs.siblings must be >= 0, got {self.siblings}")
        if not self.scorer_latency_s >= 0.0:
            raise ConfigurationError(
                f"PlanInputs.scorer_latency_s must be >= 0, got {self.scorer_latency_s}"
            )
        for name, sds in self.latency_sd.items():
            if not all(math.isfinite(sd) and sd >= 0 for sd in sds):
                raise ConfigurationError(f"PlanInputs.latency_sd[{name!r}] must be >= 0, got {sds}")
        for name, model in self.latency_models.items():
            if model.group != name:
                raise ConfigurationError(
                    f"PlanInputs.latency_models[{name!r}] is the model of group {model.group!r}"
                )
        if not any(g in self.latency_models for g in self.space.groups):
            raise ConfigurationError(
                f"PlanInputs: no latency model for any group of {self.space.groups}; "
                f"known: {sorted(self.latency_models)}"
            )

    def candidates(self) -> tuple[TTSConfig, ...]:
        """The space's configs on groups that have a latency model."""
        return self.space.configs(tuple(self.latency_models))


@dataclass(frozen=True)
class Prediction:
    """What the models expect of one config."""

    config: TTSConfig
    latency_quantile_s: float
    latency_mean_s: float
    expected_tokens: float
    accuracy: float
    sla_quantile: float

    def fits(self, slice_s: float) -> bool:
        return self.latency_quantile_s <= slice_s

    def utility(self, lambda_tokens: float, lambda_latency_s: float) -> float:
        """Paper 2's ``U = a - lambda_T * T - lambda_L * L``."""
        return (
            self.accuracy
            - lambda_tokens * self.expected_tokens
            - lambda_latency_s * self.latency_mean_s
        )


@dataclass(frozen=True)
class Plan:
    """The chosen config with its predictions and why, or a refusal (``config`` None)."""

    objective: Objective
    config: TTSConfig | None
    prediction: Prediction | None
    reason: str
    slice_s: float
    considered: int
    fitting: int

    @property
    def refused(self) -> bool:
        return self.config is None


def predict(config: TTSConfig, inputs: PlanInputs) -> Prediction:
    """The models' predictions for one config."""
    model = inputs.latency_models.get(config.group)
    if model is None:
        raise ConfigurationError(f"no latency model for group {config.group!r}")
    load = inputs.load.get(config.group, 0) + inputs.siblings * config.n
    extra_s = inputs.scorer_latency_s if config.strategy in _SCORED else 0.0
    length = inputs.length_model
    return Prediction(
        config=config,
        latency_quantile_s=_widened(model, inputs).predict_quantile(
            config, inputs.prompt_tokens, length, inputs.sla_quantile, load
        )
        + extra_s,
        latency_mean_s=model.predict_mean(config, inputs.prompt_tokens, length, load) + extra_s,
        expected_tokens=config.n * length.expected_tokens(config.max_tokens),
        accuracy=inputs.accuracy_model.predict(config, length),
        sla_quantile=inputs.sla_quantile,
    )


def _widened(model: LatencyModel, inputs: PlanInputs) -> LatencyModel:
    """The model for the SLA quantile: scaled by ``exp(z_q * sd)`` per factor (never narrowed)."""
    sds = inputs.latency_sd.get(model.group)
    if sds is None:
        return model
    return _widen(model, sds[0], sds[1], inputs.sla_quantile)


@lru_cache(maxsize=256)
def _widen(model: LatencyModel, ttft_sd: float, per_token_sd: float, q: float) -> LatencyModel:
    """Memoised: a plan asks for the same group's widened model once per config."""
    z = max(0.0, _STANDARD_NORMAL.inv_cdf(q))
    return model.scaled(math.exp(z * ttft_sd), math.exp(z * per_token_sd))


def _tie_break(p: Prediction) -> tuple[float, float, TTSConfig]:
    return (p.latency_quantile_s, p.expected_tokens, p.config)


def _percent(q: float) -> str:
    return f"p{round(q * 100, 1):g}"


def _refusal(objective: Objective, inputs: PlanInputs, predictions: list[Prediction]) -> Plan:
    cheapest = min(predictions, key=_tie_break)
    reason = (
        f"refused: nothing fits the {inputs.slice_s:.3f}s slice; the cheapest config, "
        f"{cheapest.config.label}, needs {_percent(inputs.sla_quantile)} "
        f"{cheapest.latency_quantile_s:.3f}s"
    )
    return Plan(objective, None, None, reason, inputs.slice_s, len(predictions), 0)


def _fitting(inputs: PlanInputs) -> tuple[list[Prediction], list[Prediction]]:
    predictions = [predict(c, inputs) for c in inputs.candidates()]
    return predictions, [p for p in predictions if p.fits(inputs.slice_s)]


def plan_for_deadline(inputs: PlanInputs) -> Plan:
    """Maximise predicted accuracy subject to latency quantile <= slice (paper 1)."""
    predictions, fitting = _fitting(inputs)
    if not fitting:
        return _refusal("deadline", inputs, predictions)
    best = min(fitting, key=lambda p: (-p.accuracy, *_tie_break(p)))
    reason = (
        f"deadline: {best.config.label}: {_percent(inputs.sla_quantile)} latency "
        f"{best.latency_quantile_s:.3f}s <= slice {inputs.slice_s:.3f}s, predicted accuracy "
        f"{best.accuracy:.3f}, the highest of {len(fitting)} fitting configs "
        f"(of {len(predictions)})"
    )
    return Plan(
        "deadline", best.config, best, reason, inputs.slice_s, len(predictions), len(fitting)
    )


def plan_fallback(inputs: PlanInputs, refused: Plan, *, min_tokens: int = 8) -> Plan:
    """What to run when nothing fits (``refused``): the cheapest call that can still
    produce an answer, never a wide config that cannot finish.

    That is one greedy branch (``single@1``) on the group predicted fastest, with
    the largest token cap (the space's smallest choice, halved down to
    ``min_tokens``) whose predicted *mean* latency fits the slice: a best effort
    planned at the mean, since no cap fits at the SLA quantile. When even
    ``min_tokens`` does not fit at the mean, it runs capped at ``min_tokens``,
    the slice cuts it and the answer is decided from its partial text.
    """
    caps = []
    cap = min(inputs.space.max_tokens_choices)
    while cap > min_tokens:
        caps.append(cap)
        cap //= 2
    caps.append(min(min_tokens, min(inputs.space.max_tokens_choices)))
    groups = [g for g in inputs.space.groups if g in inputs.latency_models]
    if not groups:
        raise ConfigurationError(
            f"no latency model for any group of the search space {inputs.space.groups}"
        )
    solo = replace(inputs, siblings=0)
    chosen: Prediction | None = None
    for cap in caps:
        options = [predict(TTSConfig("single", 1, g, cap), solo) for g in groups]
        chosen = min(options, key=lambda p: (p.latency_mean_s, p.config))
        if chosen.latency_mean_s <= inputs.slice_s:
            break
    assert chosen is not None
    fits = "fits" if chosen.latency_mean_s <= inputs.slice_s else "does not fit either"
    reason = (
        f"{refused.reason}; ran the cheapest call that can answer instead: "
        f"{chosen.config.label}, greedy, capped at {chosen.config.max_tokens} tokens "
        f"(predicted mean {chosen.latency_mean_s:.3f}s {fits} the slice)"
    )
    return Plan(refused.objective, chosen.config, chosen, reason, inputs.slice_s,
                refused.considered, 0)  # fmt: skip


def plan_with_penalty(inputs: PlanInputs, *, lambda_tokens: float, lambda_latency_s: float) -> Plan:
    """Maximise ``accuracy - lambda_T * tokens - lambda_L * latency`` (paper 2)
    among the configs that fit the slice (give ``slice_s=inf`` for none)."""
    for name, value in (("lambda_tokens", lambda_tokens), ("lambda_latency_s", lambda_latency_s)):
        if math.isnan(value) or value < 0 or math.isinf(value):
            raise ConfigurationError(f"{name} must be finite and >= 0, got {value}")
    predictions, fitting = _fitting(inputs)
    if not fitting:
        return _refusal("penalty", inputs, predictions)
    best = min(fitting, key=lambda p: (-p.utility(lambda_tokens, lambda_latency_s), *_tie_break(p)))
    reason = (
        f"penalty: {best.config.label}: utility "
        f"{best.utility(lambda_tokens, lambda_latency_s):.4f} = accuracy {best.accuracy:.3f} "
        f"- {lambda_tokens:g} x {best.expected_tokens:.0f} tokens "
        f"- {lambda_latency_s:g} x {best.latency_mean_s:.3f}s, the highest of "
        f"{len(fitting)} fitting configs (of {len(predictions)})"
    )
    return Plan(
        "penalty", best.config, best, reason, inputs.slice_s, len(predictions), len(fitting)
    )
