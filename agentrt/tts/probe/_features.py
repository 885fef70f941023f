"""What the probe reads: the query's text and a config's features.

Config features (raw values; the network standardises them with the training
set's mean and standard deviation, stored with its weights):

=====================  ===================================================
``strategy=majority``  1 for majority voting, else 0
``strategy=best_of_n`` 1 for best-of-N (highest self-certainty), else 0
``log2_n``             log2 of the number of branches N
``group=plain``        1 on the plain endpoint group, else 0
``group=spec``         1 on the speculative group, else 0
``log2_max_tokens``    log2 of the per-branch token cap
=====================  ===================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from agentrt.core._errors import ConfigurationError
from agentrt.pool._endpoint import PLAIN_GROUP, SPEC_GROUP
from agentrt.pool._protocol import Message
from agentrt.tts._config import StrategyName

__all__ = [
    "CONFIG_FEATURE_NAMES",
    "PROBE_GROUPS",
    "PROBE_STRATEGIES",
    "config_features",
    "query_text",
]

PROBE_STRATEGIES: tuple[StrategyName, ...] = ("majority", "best_of_n")
"""The strategies the probe is trained for (their labels come from sampled branches)."""

PROBE_GROUPS: tuple[str, ...] = (PLAIN_GROUP, SPEC_GROUP)
"""The endpoint groups with a one-hot feature."""

CONFIG_FEATURE_NAMES: tuple[str, ...] = (
    "strategy=majority",
    "strategy=best_of_n",
    "log2_n",
    "group=plain",
    "group=spec",
    "log2_max_tokens",
)


def config_features(strategy: str, n: int, group: str, max_tokens: int) -> list[float]:
    """The raw feature vector of one config (see the module docstring)."""
    if strategy not in PROBE_STRATEGIES:
        raise ConfigurationError(
            f"probe config strategy must be one of {list(PROBE_STRATEGIES)}, got {strategy!r}"
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigurationError(f"probe config n must be an integer >= 1, got {n!r}")
    if group not in PROBE_GROUPS:
        raise ConfigurationError(
            f"probe config group must be one of {list(PROBE_GROUPS)}, got {group!r}"
        )
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigurationError(
            f"probe config max_tokens must be an integer >= 1, got {max_tokens!r}"
        )
    return [
        *(1.0 if strategy == s else 0.0 for s in PROBE_STRATEGIES),
        math.log2(n),
        *(1.0 if group == g else 0.0 for g in PROBE_GROUPS),
        math.log2(max_tokens),
    ]


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return "" if content is None else str(content)


def query_text(messages: Sequence[Message]) -> str:
    """The text the probe embeds: every message's text content, one per line.

    A single user message gives its content unchanged, so a task's prompt and
    the call that sends it embed the same.
    """
    if not messages:
        raise ConfigurationError("probe query messages must not be empty")
    text = "\n".join(_content_text(m.get("content")) for m in messages).strip()
    if not text:
        raise ConfigurationError("probe query messages hold no text content")
    return text
