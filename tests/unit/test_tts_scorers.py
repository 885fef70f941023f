"""Scorers: self-certainty, verifier callables, and the reward-model client over MockTransport."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from agentrt.core._errors import (
    ConfigurationError,
    EndpointRejected,
    EndpointUnavailable,
    ProtocolError,
)
from agentrt.tts._branch import BranchView
from agentrt.tts._scorers import (
    MeanLogprobScorer,
    RewardModelScorer,
    VerifierScorer,
    score_branches,
)

BRANCH = BranchView(0, "The answer is 7", True, tokens=5, mean_logprob=-0.5)


async def test_mean_logprob_is_geometric_mean_probability() -> None:
    scorer = MeanLogprobScorer()
    assert await scorer.score("q", BRANCH) == pytest.approx(math.exp(-0.5))
    assert await scorer.score("q", BranchView(1, "x", True)) == 0.0
    assert MeanLogprobScorer(missing_score=0.25).score_now(BranchView(1, "x", True)) == 0.25


async def test_verifier_sync_and_async() -> None:
    def sync_check(prompt: str, text: str) -> float:
        return 1.0 if text.endswith("7") else 0.0

    async def async_check(prompt: str, text: str) -> float:
        return 0.5 if prompt == "q" else 0.0

    assert await VerifierScorer(sync_check).score("q", BRANCH) == 1.0
    assert await VerifierScorer(async_check).score("q", BRANCH) == 0.5


async def test_verifier_must_return_a_finite_number() -> None:
    with pytest.raises(ConfigurationError, match="finite"):
        await VerifierScorer(lambda p, t: math.nan, name="bad").score("q", BRANCH)


async def test_score_branches_attaches_scores() -> None:
    branches = [BRANCH, BranchView(1, "8", True)]
    scored = await score_branches(VerifierScorer(lambda p, t: float(len(t))), "q", branches)
    assert [b.score for b in scored] == [15.0, 1.0]
    assert [b.index for b in scored] == [0, 1]


def reward_client(handler: httpx.MockTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=handler, base_url="http://rm:8000")


async def test_pooling_request_and_last_token_reward() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        body = {
            "id": "pool-1",
            "object": "list",
            "model": "rm",
            "data": [{"index": 0, "object": "pooling", "data": [[0.1], [0.2], [0.83]]}],
            "usage": {"prompt_tokens": 9, "total_tokens": 9},
        }
        return httpx.Response(200, json=body)

    async with reward_client(httpx.MockTransport(handler)) as client:
        scorer = RewardModelScorer(client, model="rm")
        assert await scorer.score("What is 3+4?", BRANCH) == pytest.approx(0.83)
    path, payload = seen[0]
    assert path == "/pooling"
    assert payload == {
        "model": "rm",
        "messages": [
            {"role": "user", "content": "What is 3+4?"},
            {"role": "assistant", "content": "The answer is 7"},
        ],
    }


async def test_pooling_vector_and_prm_class_index() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"index": 0, "data": [0.3, 0.7]}]})

    async with reward_client(httpx.MockTransport(handler)) as client:
        assert await RewardModelScorer(client, "prm", value_index=1).score("q", BRANCH) == 0.7
        assert await RewardModelScorer(client, "prm", value_index=0).score("q", BRANCH) == 0.3


async def test_classify_endpoint() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/classify"
        seen.append(json.loads(request.content))
        return httpx.Response(
            200, json={"data": [{"index": 0, "label": "good", "probs": [0.1, 0.9]}]}
        )

    async with reward_client(httpx.MockTransport(handler)) as client:
        scorer = RewardModelScorer(client, "clf", endpoint="classify", base_url="/v1")
        assert await scorer.score("q", BRANCH) == 0.9
    assert seen == [{"model": "clf", "input": "q\n\nThe answer is 7"}]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(503, text="busy"), EndpointUnavailable),
        (httpx.Response(400, text="no such model"), EndpointRejected),
        (httpx.Response(200, text="<html>"), ProtocolError),
        (httpx.Response(200, json={"data": []}), ProtocolError),
        (httpx.Response(200, json={"data": [{"index": 0, "data": []}]}), ProtocolError),
    ],
)
async def test_failures_map_to_the_error_tree(
    response: httpx.Response, error: type[Exception]
) -> None:
    async with reward_client(httpx.MockTransport(lambda _r: response)) as client:
        with pytest.raises(error):
            await RewardModelScorer(client, "rm").score("q", BRANCH)


async def test_connection_failure_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with reward_client(httpx.MockTransport(handler)) as client:
        with pytest.raises(EndpointUnavailable, match="reward model request failed"):
            await RewardModelScorer(client, "rm").score("q", BRANCH)


async def test_reward_scorer_configuration_is_checked() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ConfigurationError, match="endpoint"):
            RewardModelScorer(client, "rm", endpoint="embed")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="model"):
            RewardModelScorer(client, "")
