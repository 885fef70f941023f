"""Training the per-query probe: collect sampled branches on the pool, bootstrap
soft labels, train and Platt-scale. What it trains is read by
:mod:`agentrt.tts.probe` at plan time."""

from agentrt.tuning.probe._collect import (
    DEFAULT_TEMPERATURE,
    collect_samples,
    default_caps,
    load_samples,
    save_samples,
    task_messages,
)
from agentrt.tuning.probe._labels import (
    DEFAULT_DRAWS,
    LabelledExample,
    QuerySamples,
    Sample,
    bootstrap_examples,
    decision_correct,
    soft_label,
)
from agentrt.tuning.probe._train import (
    ProbeReport,
    ProbeTraining,
    SplitMetrics,
    train_probe,
)

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_TEMPERATURE",
    "LabelledExample",
    "ProbeReport",
    "ProbeTraining",
    "QuerySamples",
    "Sample",
    "SplitMetrics",
    "bootstrap_examples",
    "collect_samples",
    "decision_correct",
    "default_caps",
    "load_samples",
    "save_samples",
    "soft_label",
    "task_messages",
    "train_probe",
]
