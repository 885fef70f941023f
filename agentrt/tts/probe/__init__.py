"""Paper 2's per-query accuracy probe, as an option of the accuracy model.

An MLP reads the query's embedding (all-MiniLM-L6-v2, offline) and a config's
features and predicts the probability that the config answers correctly. It
is trained with BCE on soft labels bootstrapped from K sampled branches per
query, then Platt-scaled on held-out queries. Plug it into the executor with
``CallModels(per_query=ProbeAccuracy.load(path).for_query)``. See
``docs/tts.md``, "Per-query probe".
"""

from agentrt.tts.probe.calibration import (
    PlattScaling,
    brier_score,
    expected_calibration_error,
    fit_platt,
)
from agentrt.tts.probe.collect import (
    DEFAULT_TEMPERATURE,
    collect_samples,
    default_caps,
    load_samples,
    save_samples,
    task_messages,
)
from agentrt.tts.probe.command import train_probe_command
from agentrt.tts.probe.embedding import MINILM_DIM, MINILM_NAME, MiniLMEmbedder, QueryEmbedder
from agentrt.tts.probe.estimator import ProbeAccuracy, QueryProbe
from agentrt.tts.probe.features import (
    CONFIG_FEATURE_NAMES,
    PROBE_GROUPS,
    PROBE_STRATEGIES,
    config_features,
    query_text,
)
from agentrt.tts.probe.labels import (
    DEFAULT_DRAWS,
    LabelledExample,
    QuerySamples,
    Sample,
    bootstrap_examples,
    decision_correct,
    soft_label,
)
from agentrt.tts.probe.model import Probe, ProbeInfo, ProbeNetwork, default_probe_path
from agentrt.tts.probe.train import ProbeReport, ProbeTraining, SplitMetrics, train_probe

__all__ = [
    "CONFIG_FEATURE_NAMES",
    "DEFAULT_DRAWS",
    "DEFAULT_TEMPERATURE",
    "MINILM_DIM",
    "MINILM_NAME",
    "PROBE_GROUPS",
    "PROBE_STRATEGIES",
    "LabelledExample",
    "MiniLMEmbedder",
    "PlattScaling",
    "Probe",
    "ProbeAccuracy",
    "ProbeInfo",
    "ProbeNetwork",
    "ProbeReport",
    "ProbeTraining",
    "QueryEmbedder",
    "QueryProbe",
    "QuerySamples",
    "Sample",
    "SplitMetrics",
    "bootstrap_examples",
    "brier_score",
    "collect_samples",
    "config_features",
    "decision_correct",
    "default_caps",
    "default_probe_path",
    "expected_calibration_error",
    "fit_platt",
    "load_samples",
    "query_text",
    "save_samples",
    "soft_label",
    "task_messages",
    "train_probe",
    "train_probe_command",
]
