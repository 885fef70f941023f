"""Tuning from traces: fit latency, length and accuracy models and per-node
statistics from recorded runs, and write the profile the next runs use."""

from agentrt.tuning._fit import Fit, NodeFit, fit
from agentrt.tuning._profile_writer import TunedModels, load_tuned_models, write_tuned
from agentrt.tuning._quality import ErrorStats, FitQuality, evaluate
from agentrt.tuning._samples import BranchSample, CallSample, RunSample, extract
from agentrt.tuning._tune import TuneOutcome, select_runs, tune

__all__ = [
    "BranchSample",
    "CallSample",
    "ErrorStats",
    "Fit",
    "FitQuality",
    "NodeFit",
    "RunSample",
    "TuneOutcome",
    "TunedModels",
    "evaluate",
    "extract",
    "fit",
    "load_tuned_models",
    "select_runs",
    "tune",
    "write_tuned",
]
