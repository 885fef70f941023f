"""The probe: an MLP from (query embedding, config features) to a logit, then Platt.

Paper 2's shape: ``in -> 200 -> 200 -> 1`` with GELU. Config features are
standardised inside the network with the training set's statistics, stored
as buffers next to the weights, so a saved probe carries everything it needs.
Weights and metadata are saved as one safetensors file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from agentrt.core._errors import ConfigurationError
from agentrt.core._settings import Settings
from agentrt.tts._config import STRATEGY_NAMES, StrategyName
from agentrt.tts.probe._calibration import PlattScaling
from agentrt.tts.probe._features import CONFIG_FEATURE_NAMES, PROBE_GROUPS
from agentrt.tts.probe._threads import one_torch_thread

__all__ = [
    "DEFAULT_HIDDEN",
    "FORMAT_VERSION",
    "Probe",
    "ProbeInfo",
    "ProbeNetwork",
    "default_probe_path",
    "feature_tensor",
]

DEFAULT_HIDDEN = 200
FORMAT_VERSION = 1
_METADATA_KEY = "agentrt.probe"


def default_probe_path(name: str = "default") -> Path:
    """``~/.cache/agentrt/probes/<name>.safetensors`` (under ``AGENTRT_HOME`` when set)."""
    if not name or "/" in name or "\\" in name:
        raise ConfigurationError(f"probe name must be a plain file name, got {name!r}")
    return Settings().home / "probes" / f"{name}.safetensors"


class ProbeNetwork(nn.Module):
    """``[embedding, standardised config features] -> 200 -> 200 -> 1`` (GELU)."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(
        self, embedding_dim: int, hidden: int = DEFAULT_HIDDEN, embedding_dropout: float = 0.0
    ) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise ConfigurationError(
                f"ProbeNetwork.embedding_dim must be >= 1, got {embedding_dim}"
            )
        if hidden < 1:
            raise ConfigurationError(f"ProbeNetwork.hidden must be >= 1, got {hidden}")
        if not 0.0 <= embedding_dropout < 1.0:
            raise ConfigurationError(
                f"ProbeNetwork.embedding_dropout must be in [0, 1), got {embedding_dropout}"
            )
        features = len(CONFIG_FEATURE_NAMES)
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.layers = nn.Sequential(
            nn.Linear(embedding_dim + features, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 1),
        )

    def set_feature_scaling(self, features: torch.Tensor) -> None:
        """Standardise config features with these rows' mean and std (std 1 where constant)."""
        mean = features.mean(dim=0)
        std = features.std(dim=0, unbiased=False) if len(features) > 1 else torch.ones_like(mean)
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, embeddings: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Logits, one per row."""
        scaled = (features - self.feature_mean) / self.feature_std
        dropped = self.embedding_dropout(embeddings)
        out: torch.Tensor = self.layers(torch.cat([dropped, scaled], dim=-1))
        return out.squeeze(-1)


@dataclass(frozen=True)
class ProbeInfo:
    """What a probe was trained on; it decides where the probe may answer.

    ``ns`` and ``max_tokens`` are the values seen in training: predictions
    clamp N to ``max(ns)`` and the cap into ``[min, max]`` of ``max_tokens``.
    """

    embedder: str
    embedding_dim: int
    strategies: tuple[StrategyName, ...]
    groups: tuple[str, ...]
    ns: tuple[int, ...]
    max_tokens: tuple[int, ...]
    hidden: int = DEFAULT_HIDDEN
    draws: int = 30
    queries: int = 0
    rows: int = 0

    def __post_init__(self) -> None:
        if not self.embedder:
            raise ConfigurationError("ProbeInfo.embedder must be non-empty")
        if self.embedding_dim < 1:
            raise ConfigurationError(
                f"ProbeInfo.embedding_dim must be >= 1, got {self.embedding_dim}"
            )
        for strategy in self.strategies:
            if strategy not in STRATEGY_NAMES:
                raise ConfigurationError(f"ProbeInfo.strategies: unknown strategy {strategy!r}")
        for group in self.groups:
            if group not in PROBE_GROUPS:
                raise ConfigurationError(f"ProbeInfo.groups: unknown group {group!r}")
        for name in ("strategies", "groups", "ns", "max_tokens"):
            if not getattr(self, name):
                raise ConfigurationError(f"ProbeInfo.{name} must not be empty")
        if min(self.ns) < 1 or min(self.max_tokens) < 1:
            raise ConfigurationError(
                f"ProbeInfo ns and max_tokens must be >= 1, got {self.ns}, {self.max_tokens}"
            )

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> ProbeInfo:
        try:
            return cls(
                embedder=str(data["embedder"]),
                embedding_dim=int(data["embedding_dim"]),
                strategies=tuple(data["strategies"]),
                groups=tuple(str(g) for g in data["groups"]),
                ns=tuple(int(n) for n in data["ns"]),
                max_tokens=tuple(int(m) for m in data["max_tokens"]),
                hidden=int(data["hidden"]),
                draws=int(data["draws"]),
                queries=int(data["queries"]),
                rows=int(data["rows"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{source}: probe metadata is malformed: {exc!r}") from exc


@dataclass
class Probe:
    """A trained network, its Platt scaling and what it was trained on."""

    network: ProbeNetwork
    platt: PlattScaling
    info: ProbeInfo

    def __post_init__(self) -> None:
        if self.network.embedding_dim != self.info.embedding_dim:
            raise ConfigurationError(
                f"Probe: network embedding_dim {self.network.embedding_dim} does not match "
                f"info.embedding_dim {self.info.embedding_dim}"
            )
        self.network.eval()

    def logits(self, embeddings: torch.Tensor, features: torch.Tensor) -> list[float]:
        """Uncalibrated logits for rows of (embedding, raw config features)."""
        with one_torch_thread(), torch.inference_mode():
            out: list[float] = self.network(embeddings, features).tolist()
        return out

    def probabilities(self, embeddings: torch.Tensor, features: torch.Tensor) -> list[float]:
        """Platt-scaled probabilities, in [0, 1]."""
        return [self.platt.probability(z) for z in self.logits(embeddings, features)]

    def save(self, path: Path | str) -> Path:
        """Write weights and metadata as one safetensors file; returns the path."""
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        metadata = {
            "format_version": FORMAT_VERSION,
            "info": asdict(self.info),
            "platt": {"a": self.platt.a, "b": self.platt.b},
        }
        tensors = {k: v.detach().contiguous().clone() for k, v in self.network.state_dict().items()}
        save_file(tensors, str(target), metadata={_METADATA_KEY: json.dumps(metadata)})
        return target

    @classmethod
    def load(cls, path: Path | str) -> Probe:
        """Read a probe written by :meth:`save`; a bad file raises ConfigurationError."""
        source = Path(path).expanduser()
        if not source.is_file():
            raise ConfigurationError(f"probe file not found: {source}")
        try:
            with safe_open(str(source), framework="pt") as handle:
                raw = (handle.metadata() or {}).get(_METADATA_KEY)
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as exc:
            raise ConfigurationError(f"{source}: not a safetensors probe file ({exc})") from exc
        if raw is None:
            raise ConfigurationError(f"{source}: no {_METADATA_KEY!r} metadata; not a probe file")
        try:
            metadata = json.loads(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{source}: probe metadata is not JSON") from exc
        version = metadata.get("format_version")
        if version != FORMAT_VERSION:
            raise ConfigurationError(
                f"{source}: format_version must be {FORMAT_VERSION}, got {version!r}"
            )
        info = ProbeInfo.from_json(metadata.get("info") or {}, str(source))
        platt_data = metadata.get("platt") or {}
        platt = PlattScaling(float(platt_data.get("a", 1.0)), float(platt_data.get("b", 0.0)))
        network = ProbeNetwork(info.embedding_dim, info.hidden)
        try:
            network.load_state_dict(tensors)
        except RuntimeError as exc:
            raise ConfigurationError(f"{source}: weights do not fit the probe: {exc}") from exc
        return cls(network, platt, info)


def feature_tensor(rows: Sequence[Sequence[float]]) -> torch.Tensor:
    """Rows of raw config features as a float32 tensor."""
    return torch.tensor([list(r) for r in rows], dtype=torch.float32).reshape(
        len(rows), len(CONFIG_FEATURE_NAMES)
    )
