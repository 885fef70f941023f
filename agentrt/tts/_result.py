"""What the executor returns for one call: the answer and a full account of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentrt.core._errors import ConfigurationError
from agentrt.tts._answers import Answer
from agentrt.tts._config import TTSConfig
from agentrt.tts._online import OnlineState
from agentrt.tts._planner import Plan
from agentrt.tts._voting import Decision

__all__ = ["BranchCounts", "Result"]


@dataclass(frozen=True)
class BranchCounts:
    """How the branches of a call ended.

    ``finished``: ran to a finish reason. ``early_stopped``: cancelled because
    the vote was already decided. ``cancelled``: cut by the end of the slice
    (or an error) while still useful. ``hedged``: branches asked again in a
    hedge request on another endpoint (0: no hedge); ``hedge_finished``: how
    many of the ``finished`` ones the hedge supplied (it won them).
    """

    requested: int
    finished: int = 0
    early_stopped: int = 0
    cancelled: int = 0
    hedged: int = 0
    hedge_finished: int = 0

    def __post_init__(self) -> None:
        for name in ("requested", "finished", "early_stopped", "cancelled", "hedged",
                     "hedge_finished"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ConfigurationError(
                    f"BranchCounts.{name} must be >= 0, got {getattr(self, name)}"
                )
        if self.hedged > self.requested or self.hedge_finished > min(self.hedged, self.finished):
            raise ConfigurationError(
                f"BranchCounts: hedged {self.hedged} must be <= requested {self.requested} and "
                f"hedge_finished {self.hedge_finished} <= both hedged and finished {self.finished}"
            )
        if self.finished + self.early_stopped + self.cancelled > self.requested:
            raise ConfigurationError(
                f"BranchCounts: finished {self.finished} + early_stopped {self.early_stopped} "
                f"+ cancelled {self.cancelled} exceed requested {self.requested}"
            )


@dataclass(frozen=True)
class Result:
    """One executed call.

    ``text`` is the winning branch's text (what a chat model returns);
    ``answer`` and ``decision`` say what was voted and how. ``plan`` is the
    chosen config and why, with the predictions to compare with the actual
    figures. ``tokens_saved_by_early_stop`` is the executor's estimate of the
    tokens the early-stopped branches would still have generated.
    ``degraded`` is set, with a reason, when the call returned less than it
    planned (cut by the deadline, fewer branches, a fallback config, a
    salvaged partial answer). ``hedge_after_s`` is when the call would send
    a hedge (its predicted p95), ``None`` when hedging was off or could not
    finish inside the slice; ``branches.hedged`` says whether one went out.
    """

    text: str
    answer: Answer | None
    decision: Decision
    plan: Plan
    latency_s: float
    completion_tokens: int
    prompt_tokens: int
    branches: BranchCounts
    tokens_saved_by_early_stop: int = 0
    degraded: bool = False
    degraded_reason: str | None = None
    hedge_after_s: float | None = None
    online: OnlineState | None = None
    """The online latency correction of the planned group as the plan used it
    (``None``: the executor learns nothing online)."""
    failure: Exception | None = field(default=None, compare=False)
    """The error of the call's last request when no branch produced any text
    because its requests failed for a lasting reason (refused, not the OpenAI
    protocol); the chat model raises it. ``None`` whenever there is something to
    answer from, for failures that pass (resets, 503s) and for a call cut by its
    deadline: those return ``degraded`` and empty."""

    def __post_init__(self) -> None:
        if self.degraded != (self.degraded_reason is not None):
            raise ConfigurationError(
                "Result.degraded and Result.degraded_reason must be set together, got "
                f"degraded={self.degraded}, degraded_reason={self.degraded_reason!r}"
            )
        for name in ("latency_s", "completion_tokens", "prompt_tokens"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"Result.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def hedged(self) -> bool:
        """A duplicate request went to another endpoint for this call."""
        return self.branches.hedged > 0

    @property
    def hedge_won(self) -> bool:
        """The hedge supplied at least one of the branches the call counted."""
        return self.branches.hedge_finished > 0

    @property
    def config(self) -> TTSConfig | None:
        return self.plan.config

    @property
    def votes(self) -> dict[str, float]:
        return self.decision.votes

    @property
    def predicted_latency_s(self) -> float | None:
        """The plan's latency at its SLA quantile."""
        return None if self.plan.prediction is None else self.plan.prediction.latency_quantile_s

    @property
    def predicted_tokens(self) -> float | None:
        return None if self.plan.prediction is None else self.plan.prediction.expected_tokens

    @property
    def latency_error_s(self) -> float | None:
        """Actual minus predicted latency (positive: slower than planned)."""
        predicted = self.predicted_latency_s
        return None if predicted is None else self.latency_s - predicted
