"""The public namespace of agentrt.budget: exactly the names in ``__all__``."""

from __future__ import annotations

import agentrt.budget as budget
import agentrt.core._errors as errors


def test_all_is_sorted_and_complete() -> None:
    assert budget.__all__ == sorted(budget.__all__, key=lambda n: (not n.isupper(), n))
    public = {n for n in vars(budget) if not n.startswith("_")}
    modules = {
        "allocation",
        "estimates",
        "manager",
        "policies",
        "profile",
        "report",
        "spec",
        "topology",
        "utility",
    }
    assert public - modules == set(budget.__all__)


def test_error_tree_is_drawn_and_exported() -> None:
    doc = errors.__doc__ or ""
    for name in ("ProfileError", "BudgetRefused", "TokenCapReached", "DeadlineExceeded"):
        assert name in doc
        assert name in errors.__all__
    assert issubclass(errors.ProfileError, errors.ConfigurationError)
    assert issubclass(errors.TokenCapReached, errors.RunError)
    assert issubclass(errors.BudgetRefused, errors.RunError)
