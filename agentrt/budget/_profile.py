"""Budget profiles: a :class:`BudgetSpec` plus per-node statistics (TOML).

A profile lives in ``budgets/*.toml``::

    graph = "graphs/math.py:graph"      # optional: the graph it was tuned on
    calls_per_run = 4                   # LLM calls per run when the graph is unknown

    [spec]                              # BudgetSpec
    deadline_s = 30
    policy = "critical_path"

    [default_node]                      # stats for nodes not listed below
    p50_s = 2.0

    [nodes.solve]                       # per node; unset fields come from default_node
    p50_s = 3.1
    calls_per_visit = 2
    accuracy_curve = [[1.0, 0.35], [4.0, 0.6]]

Loading a bad profile raises :class:`~agentrt.core._errors.ProfileError` naming the
file, the dotted field and the bad value.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agentrt.budget._estimates import AccuracyPoints, LatencyStats
from agentrt.budget._spec import BudgetSpec
from agentrt.core._errors import ProfileError
from agentrt.core._validation import load

__all__ = ["BudgetProfile", "NodeStats", "load_profile"]

_QUANTILE_ORDER = ("p50_s", "p90_s", "p95_s", "p99_s")


class NodeStats(BaseModel):
    """What one node of the graph costs: latency quantiles of one of its LLM
    calls (seconds), calls per visit, expected visits (loops), the expected
    width of a ``Send`` fan-out, the predicted minimum latency of a call,
    non-LLM time per visit, an accuracy-vs-time curve when known, and the
    median and p90 output tokens of one call (the executor's length prior)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    p50_s: float = Field(default=2.0, ge=0, allow_inf_nan=False)
    p90_s: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    p95_s: float = Field(default=8.0, ge=0, allow_inf_nan=False)
    p99_s: float = Field(default=15.0, ge=0, allow_inf_nan=False)
    min_call_s: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    calls_per_visit: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    expected_visits: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    fanout: float = Field(default=1.0, ge=1, allow_inf_nan=False)
    overhead_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    accuracy_curve: tuple[tuple[float, float], ...] | None = None
    tokens_p50: float | None = Field(default=None, ge=1, allow_inf_nan=False)
    tokens_p90: float | None = Field(default=None, ge=1, allow_inf_nan=False)

    @field_validator("tokens_p90")
    @classmethod
    def _tokens_ordered(cls, value: float | None, info: ValidationInfo) -> float | None:
        p50 = info.data.get("tokens_p50")
        if value is not None and (p50 is None or value < p50):
            raise ValueError(f"needs tokens_p50 and must be >= it ({p50})")
        return value

    @field_validator(*_QUANTILE_ORDER[1:])
    @classmethod
    def _quantiles_ordered(cls, value: float, info: ValidationInfo) -> float:
        assert info.field_name is not None
        previous = _QUANTILE_ORDER[_QUANTILE_ORDER.index(info.field_name) - 1]
        lower = info.data.get(previous)
        if lower is not None and value < lower:
            raise ValueError(f"must be >= {previous} ({lower})")
        return value

    @field_validator("min_call_s")
    @classmethod
    def _min_below_median(cls, value: float, info: ValidationInfo) -> float:
        p50 = info.data.get("p50_s")
        if p50 is not None and value > p50:
            raise ValueError(f"must be <= p50_s ({p50})")
        return value

    @field_validator("accuracy_curve")
    @classmethod
    def _curve_shape(
        cls, value: tuple[tuple[float, float], ...] | None
    ) -> tuple[tuple[float, float], ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("needs at least one [seconds, accuracy] point")
        for seconds, accuracy in value:
            if not (math.isfinite(seconds) and seconds >= 0):
                raise ValueError(f"seconds must be finite and >= 0, got {seconds}")
            if not 0.0 <= accuracy <= 1.0:
                raise ValueError(f"accuracy must be in [0, 1], got {accuracy}")
        times = [seconds for seconds, _ in value]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"seconds must increase strictly, got {times}")
        return value

    @property
    def latency(self) -> LatencyStats:
        """The per-call latency distribution as a plain value."""
        return LatencyStats(self.p50_s, self.p90_s, self.p95_s, self.p99_s, self.min_call_s)

    @property
    def curve(self) -> AccuracyPoints | None:
        return self.accuracy_curve


def _as_dict(value: Any, *, only_set: bool) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=only_set)
    return value


class BudgetProfile(BaseModel):
    """A spec plus per-node statistics; unset node fields come from ``default_node``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    graph: str | None = None
    calls_per_run: float = Field(default=4.0, gt=0, allow_inf_nan=False)
    spec: BudgetSpec = BudgetSpec()
    default_node: NodeStats = NodeStats()
    nodes: dict[str, NodeStats] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _inherit_default_node(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
            return data
        base = _as_dict(data.get("default_node", {}), only_set=False)
        if not isinstance(base, dict):
            return data
        nodes = {}
        for name, raw in data["nodes"].items():
            own = _as_dict(raw, only_set=True)
            nodes[name] = {**base, **own} if isinstance(own, dict) else own
        return {**data, "nodes": nodes}

    @classmethod
    def default(cls) -> BudgetProfile:
        """The generic profile used when none is given (``budgets/default.toml``)."""
        return cls()

    def stats_for(self, node: str) -> NodeStats:
        """The statistics of ``node``, or the default node's."""
        return self.nodes.get(node, self.default_node)

    def with_spec(self, **changes: Any) -> BudgetProfile:
        """This profile with some spec fields replaced (validated), e.g. a CLI deadline."""
        changed = {**self.spec.model_dump(), **changes}
        spec = load(BudgetSpec, changed, "<spec override>", prefix="spec")
        return self.model_copy(update={"spec": spec})


def load_profile(path: str | Path) -> BudgetProfile:
    """Read and validate a TOML budget profile; errors name file, field and value."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{source}: cannot read budget profile: {exc}", path=source) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}", path=source) from exc
    return load(BudgetProfile, data, source)
