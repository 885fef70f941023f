"""vLLM's CPU build garbles sampled output on a speculative server (vllm-project/vllm#55005).

Its CPU stand-in for the rejection sampler's ``expand_kernel`` writes into a
temporary copy, so drafted positions of a request with temperature > 0 are
verified at an uninitialised per-token temperature: the tokens there come out
near-uniform over the vocabulary. At temperature 0.01 a correct sampler
reproduces the greedy text; the plain server does, the speculative one does not.
This is why the local pool marks its speculative servers ``greedy_only``
(docs/deployment.md). When this test fails, vLLM is fixed: drop the mark.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec, greedy_only_groups

PROMPT = [{"role": "user", "content": "What is 47 plus 38? Answer with just the number."}]


async def _texts(pool: EndpointPool, group: str, n: int, temperature: float) -> list[str]:
    request = ChatRequest(PROMPT, max_tokens=24, n=n, temperature=temperature, seed=1)
    async with pool.stream(request, group=group) as stream:
        await stream.collect()
        return [stream.branches[i].text for i in range(n)]


async def _off_greedy(pool: EndpointPool, group: str) -> tuple[str, Sequence[str], int]:
    greedy = (await _texts(pool, group, 1, 0.0))[0]
    near_greedy = await _texts(pool, group, 4, 0.01)
    return greedy, near_greedy, sum(text != greedy for text in near_greedy)


async def test_cpu_speculative_server_garbles_sampled_output(all_specs: list[EndpointSpec]) -> None:
    assert greedy_only_groups(all_specs) == ("spec",)
    async with EndpointPool(all_specs) as pool:
        greedy, texts, off = await _off_greedy(pool, "plain")
        assert off == 0, f"plain server at temperature 0.01: {texts} vs greedy {greedy!r}"
        greedy, texts, off = await _off_greedy(pool, "spec")
    assert off > 0, (
        f"the speculative server now samples like greedy at temperature 0.01 ({texts}): "
        "vLLM's CPU spec sampling is fixed; drop greedy_only in ServerRecord.endpoint"
    )
