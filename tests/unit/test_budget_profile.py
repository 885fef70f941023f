"""Budget specs and profiles: validation, defaults, and errors that name the spot."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agentrt.budget import BudgetProfile, BudgetSpec, NodeStats, load_profile
from agentrt.core._errors import ConfigurationError, ProfileError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "profile.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_profile_file_matches_the_builtin_default() -> None:
    assert load_profile(REPO / "budgets" / "default.toml") == BudgetProfile.default()


@pytest.mark.parametrize("path", sorted((REPO / "budgets").glob("*.toml")), ids=str)
def test_every_shipped_profile_loads(path: Path) -> None:
    load_profile(path)


def test_spec_defaults_and_frozen() -> None:
    spec = BudgetSpec()
    assert (spec.deadline_s, spec.sla_quantile, spec.on_expiry) == (60.0, 0.95, "degrade")
    assert spec.token_cap is None and spec.policy == "critical_path"
    with pytest.raises(ValidationError):
        spec.deadline_s = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("deadline_s", 0),
        ("deadline_s", float("inf")),
        ("sla_quantile", 0.4),
        ("sla_quantile", 1.0),
        ("lambda_tokens", -1),
        ("token_cap", 0),
        ("reserve_s", -1),
        ("on_expiry", "explode"),
        ("policy", "fastest"),
        ("unknown", 1),
    ],
)
def test_spec_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        BudgetSpec.model_validate({field: value})


def test_reserve_must_leave_time() -> None:
    with pytest.raises(ValidationError, match="smaller than deadline_s"):
        BudgetSpec(deadline_s=5, reserve_s=5)


def test_nodes_inherit_unset_fields_from_default_node(tmp_path: Path) -> None:
    profile = load_profile(
        write(
            tmp_path,
            """
graph = "graphs/math.py:graph"
[spec]
deadline_s = 30
policy = "marginal_utility|critical_path:0.99"
[default_node]
p50_s = 1.0
p90_s = 2.0
p95_s = 3.0
p99_s = 4.0
[nodes.solve]
p50_s = 1.5
calls_per_visit = 2
accuracy_curve = [[1.0, 0.35], [4.0, 0.6]]
[nodes.tools]
calls_per_visit = 0
overhead_s = 0.5
""",
        )
    )
    assert profile.graph == "graphs/math.py:graph"
    solve = profile.stats_for("solve")
    assert (solve.p50_s, solve.p90_s, solve.calls_per_visit) == (1.5, 2.0, 2.0)
    assert solve.accuracy_curve == ((1.0, 0.35), (4.0, 0.6))
    assert profile.stats_for("tools").p99_s == 4.0
    assert profile.stats_for("unknown") == profile.default_node
    assert solve.latency.quantile(0.5) == 1.5


def test_nodes_given_as_objects_inherit_too() -> None:
    profile = BudgetProfile(
        default_node=NodeStats(p50_s=1, p90_s=2, p95_s=3, p99_s=4),
        nodes={"a": NodeStats(calls_per_visit=3)},
    )
    assert profile.stats_for("a").p99_s == 4.0
    assert profile.stats_for("a").calls_per_visit == 3.0


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        ("[spec]\ndeadline_s = -3", "spec.deadline_s", -3),
        ("[spec]\nsla_quantile = 1.5", "spec.sla_quantile", 1.5),
        ('[spec]\npolicy = "fastest"', "spec.policy", "fastest"),
        ("[spec]\ndeadline_s = 5\nreserve_s = 9", "spec.reserve_s", 9),
        ("[nodes.plan]\np90_s = 1.0", "nodes.plan.p90_s", 1.0),
        ("[nodes.plan]\nmin_call_s = 3.0", "nodes.plan.min_call_s", 3.0),
        ("[nodes.plan]\nfanout = 0.5", "nodes.plan.fanout", 0.5),
        (
            "[nodes.plan]\naccuracy_curve = [[2.0, 0.5], [1.0, 0.6]]",
            "nodes.plan.accuracy_curve",
            [[2.0, 0.5], [1.0, 0.6]],
        ),
        ("[nodes.plan]\naccuracy_curve = [[1.0, 1.5]]", "nodes.plan.accuracy_curve", [[1.0, 1.5]]),
        ("[nodes.plan]\nlatency = 3", "nodes.plan.latency", 3),
        ("calls_per_run = 0", "calls_per_run", 0),
        ("colour = 'red'", "colour", "red"),
    ],
)
def test_bad_profile_names_file_field_and_value(
    tmp_path: Path, body: str, field: str, value: object
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    error = info.value
    assert (error.path, error.field, error.value) == (str(path), field, value)
    assert str(path) in str(error)
    assert field in str(error)
    assert repr(value) in str(error)
    assert isinstance(error, ConfigurationError)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[spec\ndeadline_s = ")
    with pytest.raises(ProfileError, match="not valid TOML") as info:
        load_profile(path)
    assert info.value.path == str(path)


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "absent.toml")


def test_with_spec_overrides_and_validates() -> None:
    profile = BudgetProfile.default().with_spec(deadline_s=8, policy="equal")
    assert (profile.spec.deadline_s, profile.spec.policy) == (8, "equal")
    with pytest.raises(ProfileError) as info:
        BudgetProfile.default().with_spec(deadline_s=-1)
    assert info.value.field == "spec.deadline_s"
