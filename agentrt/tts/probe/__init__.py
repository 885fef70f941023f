"""Paper 2's per-query accuracy probe, as an option of the accuracy model.

An MLP reads the query's embedding (all-MiniLM-L6-v2, offline) and a config's
features and predicts the probability that the config answers correctly. It
is trained with BCE on soft labels bootstrapped from K sampled branches per
query, then Platt-scaled on held-out queries. Plug it into the executor with
``CallModels(per_query=ProbeAccuracy.load(path).for_query)``. See
``docs/tts.md``, "Per-query probe".
"""

from agentrt.tts.probe._calibration import (
    PlattScaling,
    brier_score,
    expected_calibration_error,
    fit_platt,
)
from agentrt.tts.probe._embedding import (
    MINILM_DIM,
    MINILM_NAME,
    MiniLMEmbedder,
    QueryEmbedder,
)
from agentrt.tts.probe._estimator import (
    ProbeAccuracy,
    QueryProbe,
)
from agentrt.tts.probe._features import (
    CONFIG_FEATURE_NAMES,
    PROBE_GROUPS,
    PROBE_STRATEGIES,
    config_features,
    query_text,
)
from agentrt.tts.probe._model import (
    Probe,
    ProbeInfo,
    ProbeNetwork,
    default_probe_path,
)

__all__ = [
    "CONFIG_FEATURE_NAMES",
    "MINILM_DIM",
    "MINILM_NAME",
    "PROBE_GROUPS",
    "PROBE_STRATEGIES",
    "MiniLMEmbedder",
    "PlattScaling",
    "Probe",
    "ProbeAccuracy",
    "ProbeInfo",
    "ProbeNetwork",
    "QueryEmbedder",
    "QueryProbe",
    "brier_score",
    "config_features",
    "default_probe_path",
    "expected_calibration_error",
    "fit_platt",
    "query_text",
]
