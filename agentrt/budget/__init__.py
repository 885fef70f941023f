"""Budgets: the spec and profile of a run, split policies, the per-run manager.

A :class:`BudgetManager` is created per run from a :class:`Deadline`, a
:class:`BudgetProfile` (``budgets/*.toml``) and the graph's
:class:`GraphTopology`; at every LLM call it allocates a slice with its
:class:`SlicePolicy` and checks before spending. See ``docs/budgets.md``.
"""

from agentrt.budget._allocation import Allocation, AllocationStatus, decide
from agentrt.budget._estimates import AccuracyPoints, CallEstimate, LatencyStats
from agentrt.budget._manager import BudgetManager, budget_scope, current_budget
from agentrt.budget._policies import (
    POLICY_NAMES,
    AllocationState,
    CriticalPath,
    EqualSplit,
    MarginalUtility,
    MaxOf,
    MinOf,
    Proportional,
    SlicePolicy,
    coerce_policy,
    max_of,
    min_of,
    policy_from_name,
)
from agentrt.budget._profile import BudgetProfile, NodeStats, load_profile
from agentrt.budget._report import BudgetReport, CallRecord, NodeRecord
from agentrt.budget._spec import BudgetSpec, OnExpiry
from agentrt.budget._topology import END, START, Edge, GraphTopology
from agentrt.budget._utility import expected_success, water_fill

__all__ = [
    "END",
    "POLICY_NAMES",
    "START",
    "AccuracyPoints",
    "Allocation",
    "AllocationState",
    "AllocationStatus",
    "BudgetManager",
    "BudgetProfile",
    "BudgetReport",
    "BudgetSpec",
    "CallEstimate",
    "CallRecord",
    "CriticalPath",
    "Edge",
    "EqualSplit",
    "GraphTopology",
    "LatencyStats",
    "MarginalUtility",
    "MaxOf",
    "MinOf",
    "NodeRecord",
    "NodeStats",
    "OnExpiry",
    "Proportional",
    "SlicePolicy",
    "budget_scope",
    "coerce_policy",
    "current_budget",
    "decide",
    "expected_success",
    "load_profile",
    "max_of",
    "min_of",
    "policy_from_name",
    "water_fill",
]
