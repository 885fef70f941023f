"""Training the probe: BCE on soft labels, then Platt scaling on held-out queries.

Queries (not rows) are split three ways with a seeded shuffle: the network is
fitted on the training queries, Platt's ``a, b`` on the calibration queries,
and the report's figures come from the test queries, which neither saw.

Small suites hold few distinct queries, and a 384-dimension embedding lets
the network memorise them; two regularisers keep it honest: dropout on the
embedding input (``embedding_dropout``, 0.8 by default) and early stopping on
the calibration queries' BCE (the epoch with the lowest is kept). All
randomness (initial weights, batch order, the split) derives from
``ProbeTraining.seed``; on one CPU build a run replays exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from agentrt.core._errors import ConfigurationError
from agentrt.tts.probe._calibration import (
    PlattScaling,
    brier_score,
    expected_calibration_error,
    fit_platt,
)
from agentrt.tts.probe._embedding import QueryEmbedder
from agentrt.tts.probe._features import config_features
from agentrt.tts.probe._model import (
    DEFAULT_HIDDEN,
    Probe,
    ProbeInfo,
    ProbeNetwork,
    feature_tensor,
)
from agentrt.tts.probe._threads import one_torch_thread
from agentrt.tuning.probe._labels import DEFAULT_DRAWS, LabelledExample

__all__ = ["ProbeReport", "ProbeTraining", "SplitMetrics", "split_queries", "train_probe"]


@dataclass(frozen=True)
class ProbeTraining:
    """How to train: network width, AdamW settings, regularisation, the held-out
    shares, the seed."""

    hidden: int = DEFAULT_HIDDEN
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    embedding_dropout: float = 0.8
    early_stopping: bool = True
    calibration_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"ProbeTraining.{name} must be an integer >= 1, got {value!r}"
                )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigurationError(
                f"ProbeTraining.learning_rate must be > 0, got {self.learning_rate}"
            )
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigurationError(
                f"ProbeTraining.weight_decay must be >= 0, got {self.weight_decay}"
            )
        for name in ("embedding_dropout", "calibration_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigurationError(f"ProbeTraining.{name} must be in [0, 1), got {value}")
        if self.calibration_fraction + self.test_fraction >= 1.0:
            raise ConfigurationError(
                "ProbeTraining.calibration_fraction + test_fraction must be < 1, got "
                f"{self.calibration_fraction} + {self.test_fraction}"
            )


@dataclass(frozen=True)
class SplitMetrics:
    """Figures on one held-out split: Brier and ECE of the raw network, of the
    Platt-scaled probe, and of the constant predictor (the training mean label)."""

    split: str
    queries: int
    rows: int
    brier_raw: float
    brier_calibrated: float
    brier_constant: float
    ece_raw: float
    ece_calibrated: float
    ece_constant: float


@dataclass(frozen=True)
class ProbeReport:
    """A trained probe and how it did.

    ``metrics`` is on the test queries, or on the calibration queries when
    ``test_fraction`` is 0 (then the calibrated figures are optimistic).
    """

    probe: Probe
    train_queries: tuple[str, ...]
    calibration_queries: tuple[str, ...]
    test_queries: tuple[str, ...]
    train_rows: int
    train_loss: float
    epochs_kept: int
    constant: float
    metrics: SplitMetrics | None


def _share(total: int, fraction: float) -> int:
    return 0 if fraction <= 0.0 else max(1, round(total * fraction))


def split_queries(
    query_ids: Sequence[str], *, calibration_fraction: float, test_fraction: float, seed: int
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Seeded split of distinct query ids into (train, calibration, test)."""
    ids = sorted(set(query_ids))
    calibration = _share(len(ids), calibration_fraction)
    test = _share(len(ids), test_fraction)
    if len(ids) - calibration - test < 1:
        raise ConfigurationError(
            f"split_queries: {len(ids)} queries leave none for training with "
            f"calibration_fraction={calibration_fraction}, test_fraction={test_fraction}"
        )
    random.Random(f"probe-split|{seed}").shuffle(ids)
    return (
        tuple(ids[calibration + test :]),
        tuple(ids[:calibration]),
        tuple(ids[calibration : calibration + test]),
    )


@dataclass(frozen=True)
class _Rows:
    embeddings: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def _rows(
    examples: Sequence[LabelledExample], keep: set[str], index: dict[str, int], table: torch.Tensor
) -> _Rows:
    chosen = [e for e in examples if e.query_id in keep]
    positions = torch.tensor([index[e.query_id] for e in chosen], dtype=torch.long)
    return _Rows(
        embeddings=table[positions] if chosen else table[:0],
        features=feature_tensor(
            [config_features(e.strategy, e.n, e.group, e.max_tokens) for e in chosen]
        ),
        labels=torch.tensor([e.label for e in chosen], dtype=torch.float32),
    )


def _check_examples(examples: Sequence[LabelledExample]) -> dict[str, str]:
    if not examples:
        raise ConfigurationError("train_probe needs labelled examples, got none")
    texts: dict[str, str] = {}
    for example in examples:
        if not 0.0 <= example.label <= 1.0:
            raise ConfigurationError(
                f"train_probe: label must be in [0, 1], got {example.label} "
                f"(query {example.query_id!r})"
            )
        config_features(example.strategy, example.n, example.group, example.max_tokens)
        if texts.setdefault(example.query_id, example.query) != example.query:
            raise ConfigurationError(
                f"train_probe: query_id {example.query_id!r} has two different query texts"
            )
    return texts


def _bce(network: ProbeNetwork, rows: _Rows) -> float:
    with torch.inference_mode():
        logits = network(rows.embeddings, rows.features)
        return float(nn.functional.binary_cross_entropy_with_logits(logits, rows.labels))


def _fit(
    network: ProbeNetwork, rows: _Rows, validation: _Rows | None, training: ProbeTraining
) -> tuple[float, int]:
    """Train; with ``validation`` rows, keep the epoch with the lowest validation BCE.
    Returns the final training BCE and the epoch kept."""
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
    )
    loss_fn = nn.BCEWithLogitsLoss()
    order = torch.Generator().manual_seed(training.seed)
    best_loss, best_epoch = math.inf, training.epochs
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(1, training.epochs + 1):
        network.train()
        permutation = torch.randperm(len(rows), generator=order)
        for start in range(0, len(rows), training.batch_size):
            batch = permutation[start : start + training.batch_size]
            optimiser.zero_grad()
            logits = network(rows.embeddings[batch], rows.features[batch])
            loss = loss_fn(logits, rows.labels[batch])
            loss.backward()
            optimiser.step()
        network.eval()
        if validation is not None:
            loss_now = _bce(network, validation)
            if loss_now < best_loss:
                best_loss, best_epoch = loss_now, epoch
                best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    if best_state is not None:
        network.load_state_dict(best_state)
    return _bce(network, rows), best_epoch


def _metrics(name: str, probe: Probe, rows: _Rows, constant: float, queries: int) -> SplitMetrics:
    labels: list[float] = rows.labels.tolist()
    logits = probe.logits(rows.embeddings, rows.features)
    raw = [PlattScaling().probability(z) for z in logits]
    calibrated = [probe.platt.probability(z) for z in logits]
    flat = [constant] * len(labels)
    return SplitMetrics(
        split=name,
        queries=queries,
        rows=len(labels),
        brier_raw=brier_score(raw, labels),
        brier_calibrated=brier_score(calibrated, labels),
        brier_constant=brier_score(flat, labels),
        ece_raw=expected_calibration_error(raw, labels),
        ece_calibrated=expected_calibration_error(calibrated, labels),
        ece_constant=expected_calibration_error(flat, labels),
    )


def train_probe(
    examples: Sequence[LabelledExample],
    embedder: QueryEmbedder,
    training: ProbeTraining | None = None,
    *,
    draws: int = DEFAULT_DRAWS,
) -> ProbeReport:
    """Embed each query once, fit the network, Platt-scale it, measure it.

    ``draws`` is recorded in the probe's metadata (the labels' bootstrap draws).
    """
    training = training or ProbeTraining()
    texts = _check_examples(examples)
    train_ids, calibration_ids, test_ids = split_queries(
        list(texts),
        calibration_fraction=training.calibration_fraction,
        test_fraction=training.test_fraction,
        seed=training.seed,
    )
    ordered = sorted(texts)
    table = embedder.embed([texts[q] for q in ordered]).to(torch.float32)
    if tuple(table.shape) != (len(ordered), embedder.dim):
        raise ConfigurationError(
            f"embedder {embedder.name!r} returned shape {tuple(table.shape)}, "
            f"expected ({len(ordered)}, {embedder.dim})"
        )
    index = {q: i for i, q in enumerate(ordered)}
    train = _rows(examples, set(train_ids), index, table)
    calibration = _rows(examples, set(calibration_ids), index, table)
    test = _rows(examples, set(test_ids), index, table)
    validation = calibration if training.early_stopping and len(calibration) else None
    with torch.random.fork_rng(devices=[]), one_torch_thread():
        torch.manual_seed(training.seed)
        network = ProbeNetwork(embedder.dim, training.hidden, training.embedding_dropout)
        network.set_feature_scaling(train.features)
        train_loss, epochs_kept = _fit(network, train, validation, training)
    info = ProbeInfo(
        embedder=embedder.name,
        embedding_dim=embedder.dim,
        strategies=tuple(sorted({e.strategy for e in examples})),
        groups=tuple(sorted({e.group for e in examples})),
        ns=tuple(sorted({e.n for e in examples})),
        max_tokens=tuple(sorted({e.max_tokens for e in examples})),
        hidden=training.hidden,
        draws=draws,
        queries=len(texts),
        rows=len(examples),
    )
    probe = Probe(network, PlattScaling(), info)
    if len(calibration):
        probe.platt = fit_platt(
            probe.logits(calibration.embeddings, calibration.features),
            calibration.labels.tolist(),
        )
    constant = float(train.labels.mean())
    metrics = None
    if len(test):
        metrics = _metrics("test", probe, test, constant, len(test_ids))
    elif len(calibration):
        metrics = _metrics("calibration", probe, calibration, constant, len(calibration_ids))
    return ProbeReport(
        probe=probe,
        train_queries=train_ids,
        calibration_queries=calibration_ids,
        test_queries=test_ids,
        train_rows=len(train),
        train_loss=train_loss,
        epochs_kept=epochs_kept,
        constant=constant,
        metrics=metrics,
    )
