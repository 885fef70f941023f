"""Hostile configuration: budget specs, profiles, endpoint lists and files, CLI
arguments. Each either loads or raises one agentrt ConfigurationError that names
what was wrong; nothing else escapes and nothing hangs."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agentrt.budget._profile import BudgetProfile, load_profile
from agentrt.cli.app import app
from agentrt.cli.run import _DEADLINE
from agentrt.core._errors import ConfigurationError, EndpointConfigError, ProfileError
from agentrt.pool._config import endpoints_from_toml, parse_endpoint_list

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SPEC_FIELDS = ["deadline_s", "policy", "reserve_s", "token_cap", "sla_quantile", "on_expiry", "x"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = ", ".join(
            f'"{k.encode("unicode_escape").decode("ascii")}" = {_toml_value(v)}'
            for k, v in value.items()
            if v is not None
        )
        return "{" + items + "}"
    return '""'


@FAST
@given(changes=st.dictionaries(st.sampled_from(SPEC_FIELDS), values, min_size=1, max_size=3))
def test_budget_spec_overrides_validate_or_name_the_field(changes: dict[str, Any]) -> None:
    try:
        BudgetProfile.default().with_spec(**changes)
    except ProfileError as exc:
        assert exc.field is not None and exc.field.startswith("spec")
        assert "<spec override>" in str(exc)


@FAST
@given(text=st.text(max_size=300))
def test_any_profile_text_loads_or_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "profile.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_profile(path)
    except ProfileError as exc:
        assert str(path) in str(exc)


@FAST
@given(
    spec=st.dictionaries(st.sampled_from(SPEC_FIELDS), values, max_size=3),
    node=st.dictionaries(
        st.sampled_from(["p50_s", "p95_s", "fanout", "tokens_p90", "accuracy_curve", "y"]),
        values,
        max_size=3,
    ),
)
def test_structured_profiles_load_or_name_file_and_field(
    tmp_path: Path, spec: dict[str, Any], node: dict[str, Any]
) -> None:
    body = "[spec]\n" + "".join(
        f"{k} = {_toml_value(v)}\n" for k, v in spec.items() if v is not None
    )
    body += "[nodes.solve]\n" + "".join(
        f"{k} = {_toml_value(v)}\n" for k, v in node.items() if v is not None
    )
    path = tmp_path / "profile.toml"
    path.write_text(body, encoding="utf-8")
    try:
        load_profile(path)
    except ProfileError as exc:
        assert str(path) in str(exc)


@FAST
@given(path_bytes=st.binary(max_size=64))
def test_profile_that_is_not_utf8_is_a_profile_error(tmp_path: Path, path_bytes: bytes) -> None:
    path = tmp_path / "profile.toml"
    path.write_bytes(b"\xff\xfe" + path_bytes)
    with pytest.raises(ProfileError, match=r"profile\.toml: cannot read"):
        load_profile(path)


@FAST
@given(text=st.text(max_size=200))
def test_any_endpoint_list_parses_or_names_the_entry(text: str) -> None:
    try:
        specs = parse_endpoint_list(text)
    except EndpointConfigError as exc:
        assert "AGENTRT_ENDPOINTS" in str(exc)
    else:
        assert specs and all(s.url.startswith(("http://", "https://")) for s in specs)


@FAST
@given(
    tables=st.lists(
        st.dictionaries(
            st.sampled_from(["url", "group", "model", "api_key_env", "verify_tls", "speculative"]),
            values,
            max_size=4,
        ),
        max_size=3,
    )
)
def test_any_endpoints_file_loads_or_names_the_table(
    tmp_path: Path, tables: list[dict[str, Any]]
) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(
        "".join(
            "[[endpoints]]\n"
            + "".join(f"{k} = {_toml_value(v)}\n" for k, v in t.items() if v is not None)
            for t in tables
        ),
        encoding="utf-8",
    )
    try:
        endpoints_from_toml(path, env={})
    except EndpointConfigError as exc:
        assert str(path) in str(exc)


runner = CliRunner()
NO_POOL = {"AGENTRT_ENDPOINTS": "http://127.0.0.1:9"}  # never start the local pool


@settings(max_examples=30, deadline=None)
@given(deadline=st.text(alphabet=string.printable, max_size=12))
def test_cli_bad_deadlines_are_one_clear_line(deadline: str) -> None:
    assume(_DEADLINE.match(deadline) is None and not deadline.startswith("-"))
    result = runner.invoke(
        app,
        ["run", "graphs/math.py:graph", "--deadline", deadline, "--task-seed", "1"],
        env=NO_POOL,
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "--deadline" in result.output


@settings(max_examples=30, deadline=None)
@given(
    graph=st.text(alphabet=string.ascii_letters + string.digits + "/.:_-", min_size=1, max_size=30),
    seed=st.integers(min_value=-5, max_value=5),
)
def test_cli_unknown_graphs_are_one_clear_line(graph: str, seed: int) -> None:
    assume(not graph.startswith("-") and not Path(graph.partition(":")[0]).is_file())
    result = runner.invoke(app, ["run", graph, "--task-seed", str(seed)], env=NO_POOL)
    assert result.exit_code in (1, 2)
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_configuration_errors_are_value_errors() -> None:
    # One tree: callers can catch agentrt's or Python's usual type for bad values.
    assert issubclass(ConfigurationError, ValueError)
