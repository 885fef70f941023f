"""Paper 1's greedy search over branch parallelism B and draft length gamma.

Branch-wise parallelism (B branches and a majority vote) and sequence-wise
parallelism (speculative decoding with draft length gamma) compete for the
same spare compute. In vLLM gamma is fixed per server, so each value of gamma
is an endpoint group (plain is gamma = 0). Starting from the cheapest point
(smallest B, smallest gamma that fits), each step moves to the neighbour
(B up to the next width that raises accuracy, gamma one step up or down) with the highest predicted
accuracy, then the lowest latency quantile, as long as it fits the slice and
strictly improves on the current point; it stops when none does. B > 1 is
never tried on the space's greedy-only groups. Kept beside
the exhaustive planner for comparison, not as the default.
"""

from __future__ import annotations

from agentrt.tts._config import TTSConfig
from agentrt.tts._planner import Plan, PlanInputs, Prediction, predict

__all__ = ["plan_greedy_parallelism"]


def _config(inputs: PlanInputs, branches: int, group: str, max_tokens: int) -> TTSConfig:
    space = inputs.space
    if branches == 1:
        return TTSConfig("single", 1, group, max_tokens)
    return TTSConfig("majority", branches, group, max_tokens, space.temperature, space.top_p)


def _rank(p: Prediction) -> tuple[float, float]:
    return (p.accuracy, -p.latency_quantile_s)


def plan_greedy_parallelism(inputs: PlanInputs, max_tokens: int | None = None) -> Plan:
    """Greedy (B, gamma) search under the slice; ``max_tokens`` defaults to the
    space's largest choice. B = 1 runs ``single``; B > 1 runs ``majority``."""
    cap = max(inputs.space.max_tokens_choices) if max_tokens is None else max_tokens
    groups = sorted(
        (g for g in inputs.space.groups if g in inputs.latency_models),
        key=lambda g: (inputs.latency_models[g].draft_tokens, g),
    )
    widths = sorted(set(inputs.space.n_choices))
    cache: dict[tuple[int, int], Prediction] = {}

    def allowed(b: int, g: int) -> bool:
        return widths[b] == 1 or groups[g] not in inputs.space.greedy_only_groups

    def at(b: int, g: int) -> Prediction:
        if (b, g) not in cache:
            cache[b, g] = predict(_config(inputs, widths[b], groups[g], cap), inputs)
        return cache[b, g]

    start = next(
        ((0, g) for g in range(len(groups)) if allowed(0, g) and at(0, g).fits(inputs.slice_s)),
        None,
    )
    if start is None:
        cheapest = min((at(0, g) for g in range(len(groups)) if allowed(0, g)),
                       key=lambda p: p.latency_quantile_s, default=at(0, 0))  # fmt: skip
        reason = (
            f"refused: greedy (B, gamma) found nothing within the {inputs.slice_s:.3f}s slice; "
            f"{cheapest.config.label} needs {cheapest.latency_quantile_s:.3f}s"
        )
        return Plan("greedy", None, None, reason, inputs.slice_s, len(cache), 0)
    b, g = start
    steps = [f"start B={widths[b]} gamma={inputs.latency_models[groups[g]].draft_tokens}"]

    def wider(b: int, g: int) -> int:
        """The next width that predicts higher accuracy (majority of 2 ties with 1:
        a plateau must not stop the search), or the next width if none fits."""
        for nb in range(b + 1, len(widths)):
            if not at(nb, g).fits(inputs.slice_s):
                return nb
            if at(nb, g).accuracy > at(b, g).accuracy:
                return nb
        return b + 1

    while True:
        moves = [(wider(b, g), g), (b, g + 1), (b, g - 1)]
        fitting = [
            (at(nb, ng), nb, ng)
            for nb, ng in moves
            if 0 <= nb < len(widths)
            and 0 <= ng < len(groups)
            and allowed(nb, ng)
            and at(nb, ng).fits(inputs.slice_s)
        ]
        better = [m for m in fitting if _rank(m[0]) > _rank(at(b, g))]
        if not better:
            break
        _, b, g = max(better, key=lambda m: (_rank(m[0]), -m[1], -m[2]))
        steps.append(f"B={widths[b]} gamma={inputs.latency_models[groups[g]].draft_tokens}")
    best = at(b, g)
    reason = (
        f"greedy: {best.config.label}: {' -> '.join(steps)}; latency "
        f"{best.latency_quantile_s:.3f}s <= slice {inputs.slice_s:.3f}s, "
        f"predicted accuracy {best.accuracy:.3f}"
    )
    fits = sum(1 for p in cache.values() if p.fits(inputs.slice_s))
    return Plan("greedy", best.config, best, reason, inputs.slice_s, len(cache), fits)
