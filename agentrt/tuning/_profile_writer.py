"""Write what tuning fitted: a budget profile and its executor models.

``budgets/NAME.tuned.toml`` is a plain :class:`~agentrt.budget.BudgetProfile`
(``load_profile`` reads it): the base profile's spec and nodes, with every
fitted node's statistics (latency quantiles, calls per visit, visits, fan-out,
overhead, output-length p50/p90, accuracy curve) replacing the base's.
Next to it, ``NAME.tuned.latency.toml`` holds the executor's models in the
calibration format (``[latency.<group>]``, so ``agentrt run --calibration``
takes it) plus, per node, the full output-length samples and the measured
accuracy table (``[nodes.<name>.length]``, ``[nodes.<name>.accuracy]``).

Both files are replaced atomically (temporary file, fsync, rename): a service
that re-reads its profile by mtime sees the old file or the new one, never half.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from agentrt.budget._profile import BudgetProfile, NodeStats
from agentrt.core._errors import ProfileError
from agentrt.core._files import atomic_write_text
from agentrt.core._validation import without_none
from agentrt.tts._accuracy import AccuracyModel
from agentrt.tts._latency import LatencyModel
from agentrt.tts._length import LengthModel
from agentrt.tuning._fit import Fit

__all__ = ["TunedModels", "load_tuned_models", "models_path", "tuned_profile", "write_tuned"]


def models_path(profile_path: Path) -> Path:
    """``budgets/x.tuned.toml`` -> ``budgets/x.tuned.latency.toml``."""
    return profile_path.with_name(profile_path.stem + ".latency.toml")


def tuned_profile(fitted: Fit, base: BudgetProfile, graph: str | None) -> BudgetProfile:
    """``base`` with the fitted nodes' statistics (a node without calls keeps its
    base latency figures but takes the fitted visit and overhead counts)."""
    nodes: dict[str, NodeStats] = dict(base.nodes)
    for name, node in fitted.nodes.items():
        start = base.stats_for(name).model_dump(exclude_none=True)
        fitted_fields = node.stats.model_dump(exclude_unset=True)
        if node.calls == 0:
            fitted_fields = {
                k: v for k, v in fitted_fields.items()
                if k in ("expected_visits", "fanout", "overhead_s", "calls_per_visit")
            }  # fmt: skip
        nodes[name] = NodeStats.model_validate({**start, **fitted_fields})
    update: dict[str, Any] = {"nodes": nodes, "graph": graph or base.graph}
    if fitted.calls_per_run is not None and fitted.calls_per_run > 0:
        update["calls_per_run"] = round(fitted.calls_per_run, 3)
    return base.model_copy(update=update)


def write_tuned(path: Path, fitted: Fit, profile: BudgetProfile, header: str) -> tuple[Path, Path]:
    """Write the profile to ``path`` and the models next to it; returns both paths."""
    data = profile.model_dump(mode="json", exclude_none=True)
    models = {
        "latency": {group: model.to_dict() for group, model in sorted(fitted.latency.items())},
        "nodes": {
            name: {
                "length": node.length.to_dict(),
                **({"accuracy": node.accuracy.to_dict()} if node.accuracy else {}),
            }
            for name, node in sorted(fitted.nodes.items())
        },
    }
    side = models_path(path)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    # The models first: a profile never names a side file older than itself.
    # Mode 0644, as a file written in place would be (a temporary file is 0600).
    atomic_write_text(side, comment + tomli_w.dumps(without_none(models)), mode=0o644)
    atomic_write_text(
        path,
        comment
        + f"# Executor models: {side.name} (pass it as --calibration).\n"
        + tomli_w.dumps(without_none(data)),
        mode=0o644,
    )
    return path, side


@dataclass(frozen=True)
class TunedModels:
    """The executor models of a tuned profile."""

    latency: dict[str, LatencyModel]
    length: dict[str, LengthModel]
    accuracy: dict[str, AccuracyModel]


def load_tuned_models(path: str | Path) -> TunedModels:
    """Read a ``*.tuned.latency.toml`` (or the profile path next to it)."""
    source = Path(path)
    if not source.name.endswith(".latency.toml"):
        source = models_path(source)
    try:
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{source}: cannot read tuned models: {exc}", path=str(source)) from exc
    latency = {
        str(group): LatencyModel.from_dict(table, source=f"{source}: latency.{group}")
        for group, table in (document.get("latency") or {}).items()
    }
    length, accuracy = {}, {}
    for name, tables in (document.get("nodes") or {}).items():
        if "length" in tables:
            length[name] = LengthModel.from_dict(tables["length"], f"{source}: nodes.{name}.length")
        if "accuracy" in tables:
            accuracy[name] = AccuracyModel.from_dict(
                tables["accuracy"], f"{source}: nodes.{name}.accuracy"
            )
    return TunedModels(latency, length, accuracy)
