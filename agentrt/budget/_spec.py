"""The budget of one run: deadline, SLA quantile, penalties, caps (pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agentrt.budget._policies import policy_from_name
from agentrt.core._errors import ConfigurationError

__all__ = ["BudgetSpec", "OnExpiry"]

OnExpiry = Literal["degrade", "raise"]


class BudgetSpec(BaseModel):
    """What a run may spend and how it trades accuracy for cost.

    ``lambda_tokens`` and ``lambda_latency`` are the penalties of
    ``U = accuracy − λ_T·tokens − λ_L·latency_s`` (Huang et al.). ``reserve_s``
    is kept back from every slice for wrap-up. On expiry, ``degrade`` returns
    the best state so far, flagged; ``raise`` raises.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    sla_quantile: float = Field(default=0.95, ge=0.5, le=0.999)
    lambda_tokens: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    lambda_latency: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    token_cap: int | None = Field(default=None, gt=0)
    reserve_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    on_expiry: OnExpiry = "degrade"
    policy: str = "critical_path"

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        try:
            policy_from_name(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("reserve_s")
    @classmethod
    def _reserve_fits(cls, value: float, info: ValidationInfo) -> float:
        deadline_s = info.data.get("deadline_s")
        if deadline_s is not None and value >= deadline_s:
            raise ValueError(f"must be smaller than deadline_s ({deadline_s})")
        return value
