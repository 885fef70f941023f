"""Tuning from traces: fit latency, length and accuracy models and per-node
statistics from recorded runs, and write the profile the next runs use."""

from agentrt.tuning.command import TuneOutcome, tune, tune_command
from agentrt.tuning.fit import Fit, NodeFit, fit
from agentrt.tuning.profile_writer import TunedModels, load_tuned_models, write_tuned
from agentrt.tuning.quality import ErrorStats, FitQuality, evaluate
from agentrt.tuning.samples import BranchSample, CallSample, RunSample, extract

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
    "tune",
    "tune_command",
    "write_tuned",
]
