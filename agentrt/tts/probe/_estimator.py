"""The probe as the planner's accuracy model, built per query.

``ProbeAccuracy(probe, embedder).for_query(messages)`` embeds the query once
and returns an :class:`~agentrt.tts._accuracy.AccuracyEstimator`; pass
``per_query=probe_accuracy.for_query`` to :class:`~agentrt.tts._executor.CallModels`.

What it answers for a config:

* a strategy or group the probe was not trained on: the ``fallback``
  estimator (an :class:`~agentrt.tts._accuracy.AccuracyModel` by default);
* N above the largest N trained on is read as that N (no extrapolation);
  ``max_tokens`` is clamped into the trained range, and below it the value is
  scaled by the length model's ``F(max_tokens) / F(smallest trained cap)``;
* ``majority`` is made non-decreasing in N (running maximum over 1..N), so
  the planner is never told that more votes hurt; every value is clipped to
  [0, 1].
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from agentrt.core._errors import ConfigurationError
from agentrt.pool._protocol import Message
from agentrt.tts._accuracy import AccuracyEstimator, AccuracyModel
from agentrt.tts._config import TTSConfig
from agentrt.tts._length import LengthModel
from agentrt.tts.probe._embedding import MiniLMEmbedder, QueryEmbedder
from agentrt.tts.probe._features import config_features, query_text
from agentrt.tts.probe._model import Probe, default_probe_path, feature_tensor

__all__ = ["ProbeAccuracy", "QueryProbe"]


class QueryProbe:
    """The probe's accuracy estimates for one query (an ``AccuracyEstimator``)."""

    def __init__(self, probe: Probe, embedding: torch.Tensor, fallback: AccuracyEstimator) -> None:
        if tuple(embedding.shape) != (probe.info.embedding_dim,):
            raise ConfigurationError(
                f"QueryProbe embedding must have shape ({probe.info.embedding_dim},), "
                f"got {tuple(embedding.shape)}"
            )
        self.probe = probe
        self.embedding = embedding
        self.fallback = fallback
        self._curves: dict[tuple[str, str, int], list[float]] = {}

    def _curve(self, strategy: str, group: str, max_tokens: int) -> list[float]:
        """Probabilities for N = 1..max trained N (index N-1), monotone for majority."""
        key = (strategy, group, max_tokens)
        curve = self._curves.get(key)
        if curve is None:
            top = max(self.probe.info.ns)
            rows = [config_features(strategy, n, group, max_tokens) for n in range(1, top + 1)]
            values = self.probe.probabilities(self.embedding.expand(top, -1), feature_tensor(rows))
            curve = [min(1.0, max(0.0, v)) for v in values]
            if strategy == "majority":
                for i in range(1, len(curve)):
                    curve[i] = max(curve[i], curve[i - 1])
            self._curves[key] = curve
        return curve

    def predict(self, config: TTSConfig, length_model: LengthModel) -> float:
        info = self.probe.info
        if config.strategy not in info.strategies or config.group not in info.groups:
            return self.fallback.predict(config, length_model)
        low, high = min(info.max_tokens), max(info.max_tokens)
        cap = min(max(config.max_tokens, low), high)
        curve = self._curve(config.strategy, config.group, cap)
        value = curve[min(config.n, len(curve)) - 1]
        if config.max_tokens < low:
            reference = length_model.cdf(low)
            if reference > 0.0:
                value *= min(1.0, length_model.cdf(config.max_tokens) / reference)
        return min(1.0, max(0.0, value))


class ProbeAccuracy:
    """Builds a :class:`QueryProbe` per query; embeddings are cached by query text."""

    def __init__(
        self,
        probe: Probe,
        embedder: QueryEmbedder,
        *,
        fallback: AccuracyEstimator | None = None,
        cache_size: int = 256,
    ) -> None:
        if embedder.name != probe.info.embedder or embedder.dim != probe.info.embedding_dim:
            raise ConfigurationError(
                f"ProbeAccuracy: the probe was trained on embedder {probe.info.embedder!r} "
                f"({probe.info.embedding_dim} dims), got {embedder.name!r} ({embedder.dim} dims)"
            )
        if cache_size < 0:
            raise ConfigurationError(f"ProbeAccuracy.cache_size must be >= 0, got {cache_size}")
        self.probe = probe
        self.embedder = embedder
        self.fallback: AccuracyEstimator = fallback if fallback is not None else AccuracyModel()
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @classmethod
    def load(
        cls,
        path: Path | str | None = None,
        *,
        embedder: QueryEmbedder | None = None,
        fallback: AccuracyEstimator | None = None,
    ) -> ProbeAccuracy:
        """A saved probe (default :func:`default_probe_path`) with MiniLM unless told otherwise."""
        probe = Probe.load(path if path is not None else default_probe_path())
        return cls(probe, embedder or MiniLMEmbedder(), fallback=fallback)

    def embedding(self, text: str) -> torch.Tensor:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        row = self.embedder.embed([text])[0]
        if self.cache_size:
            self._cache[text] = row
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return row

    def for_query(self, messages: Sequence[Message]) -> QueryProbe:
        """The estimator for one call's messages (the ``CallModels.per_query`` hook)."""
        return QueryProbe(self.probe, self.embedding(query_text(messages)), self.fallback)
