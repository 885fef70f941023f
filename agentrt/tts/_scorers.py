"""Scorers: how good one branch is, as a number (higher is better).

Weighted voting uses the score as a vote weight and best-of-N picks the
highest, so scores in [0, 1] are the convention (probabilities,
``exp(mean logprob)``); a reward model may return any real number, and
weighted voting clamps negatives to 0.

Three kinds: the model's own self-certainty (:class:`MeanLogprobScorer`, free),
any verifier callable (:class:`VerifierScorer`, sync or async), and a reward
model behind vLLM's pooling API (:class:`RewardModelScorer`, one HTTP request
per branch through an injected ``httpx.AsyncClient``). Scorers do not enforce
deadlines; the executor bounds them.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from agentrt.core._errors import (
    ConfigurationError,
    EndpointRejected,
    EndpointUnavailable,
    ProtocolError,
)
from agentrt.tts._branch import BranchView

__all__ = [
    "MeanLogprobScorer",
    "RewardModelScorer",
    "Scorer",
    "Verifier",
    "VerifierScorer",
    "score_branches",
]

Verifier = Callable[[str, str], float | Awaitable[float]]
"""``(prompt, text) -> score``, plain or async."""


class Scorer(Protocol):
    """Scores one branch of an answer to ``prompt``."""

    @property
    def name(self) -> str: ...

    async def score(self, prompt: str, branch: BranchView) -> float: ...


async def score_branches(
    scorer: Scorer, prompt: str, branches: Sequence[BranchView]
) -> list[BranchView]:
    """Score every branch concurrently; returns the snapshots with scores set."""
    scores = await asyncio.gather(*(scorer.score(prompt, b) for b in branches))
    return [b.with_score(s) for b, s in zip(branches, scores, strict=True)]


def _finite(owner: str, value: float) -> float:
    if not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
        raise ConfigurationError(f"{owner} returned a score that is not a finite number: {value!r}")
    return float(value)


@dataclass(frozen=True)
class MeanLogprobScorer:
    """Self-certainty: ``exp(mean token logprob)``, the geometric-mean token
    probability, in (0, 1]. Needs logprobs in the request; a branch without
    them scores ``missing_score``."""

    missing_score: float = 0.0
    name: str = "mean_logprob"

    async def score(self, prompt: str, branch: BranchView) -> float:
        return self.score_now(branch)

    def score_now(self, branch: BranchView) -> float:
        """The same score without awaiting (it needs no I/O)."""
        if branch.mean_logprob is None:
            return self.missing_score
        return math.exp(min(0.0, branch.mean_logprob))


@dataclass(frozen=True)
class VerifierScorer:
    """Any ``(prompt, text) -> float`` callable, sync or async (a unit-test
    checker, a rule-based verifier, a judge model call)."""

    verifier: Verifier
    name: str = "verifier"

    async def score(self, prompt: str, branch: BranchView) -> float:
        value = self.verifier(prompt, branch.text)
        if inspect.isawaitable(value):
            value = await value
        return _finite(f"verifier {self.name!r}", value)


class _PoolingItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    index: int = 0
    data: list[list[float]] | list[float]


class _PoolingResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    data: list[_PoolingItem]


class _ClassifyItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    index: int = 0
    probs: list[float]


class _ClassifyResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    data: list[_ClassifyItem]


def _join_prompt_and_answer(prompt: str, text: str) -> str:
    return f"{prompt}\n\n{text}"


@dataclass(frozen=True)
class RewardModelScorer:
    """A reward / process-reward / classifier model served by vLLM's pooling API.

    ``endpoint="pooling"`` POSTs ``{"model", "messages": [user prompt,
    assistant text]}`` to ``/pooling``; the answer's ``data`` is a vector or a
    per-token matrix, and the score is ``value_index`` of its last row (the
    last token's reward; ``-1`` fits one-output reward heads, ``1`` the
    "good" class of a two-class PRM). ``endpoint="classify"`` POSTs
    ``{"model", "input": format_input(prompt, text)}`` to ``/classify`` and
    takes ``probs[value_index]``. ``base_url`` is joined to the client's own
    base URL when relative. HTTP failures map to the pool's error tree.
    """

    client: httpx.AsyncClient
    model: str
    endpoint: Literal["pooling", "classify"] = "pooling"
    value_index: int = -1
    base_url: str = ""
    format_input: Callable[[str, str], str] = field(default=_join_prompt_and_answer)
    name: str = "reward_model"

    def __post_init__(self) -> None:
        if self.endpoint not in ("pooling", "classify"):
            raise ConfigurationError(
                f"RewardModelScorer.endpoint must be 'pooling' or 'classify', got {self.endpoint!r}"
            )
        if not self.model:
            raise ConfigurationError("RewardModelScorer.model must name the served reward model")

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.endpoint}"

    def payload(self, prompt: str, text: str) -> dict[str, Any]:
        """The JSON body sent for one branch."""
        if self.endpoint == "pooling":
            return {
                "model": self.model,
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": text},
                ],
            }
        return {"model": self.model, "input": self.format_input(prompt, text)}

    async def score(self, prompt: str, branch: BranchView) -> float:
        try:
            response = await self.client.post(self.url, json=self.payload(prompt, branch.text))
        except httpx.TransportError as exc:
            raise EndpointUnavailable(self.url, f"reward model request failed: {exc!r}") from exc
        if response.status_code >= 500:
            raise EndpointUnavailable(
                self.url, f"reward model answered {response.status_code}", response.status_code
            )
        if response.status_code >= 400:
            raise EndpointRejected(
                self.url,
                f"reward model refused the request ({response.status_code}): {response.text[:200]}",
                response.status_code,
            )
        return self._parse(response.content)

    def _parse(self, body: bytes) -> float:
        try:
            if self.endpoint == "pooling":
                values = _PoolingResponse.model_validate_json(body).data[0].data
                last = values[-1]
                row: list[float] = last if isinstance(last, list) else values  # type: ignore[assignment]
                value = row[self.value_index]
            else:
                value = _ClassifyResponse.model_validate_json(body).data[0].probs[self.value_index]
        except (ValidationError, IndexError, TypeError) as exc:
            raise ProtocolError(
                self.url, f"not a {self.endpoint} response with a score: {body[:200]!r}"
            ) from exc
        if math.isnan(value) or math.isinf(value):
            raise ProtocolError(self.url, f"reward model returned a non-finite score: {value}")
        return float(value)
