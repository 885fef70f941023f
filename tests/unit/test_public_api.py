"""The public namespaces are exactly what they say (as httpx tests its own)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import agentrt

EXPECTED = {
    "AgentrtError", "AnswerSpec", "Budget", "BudgetProfile", "BudgetRefused", "ChatRequest",
    "Clock", "ConfigurationError", "Deadline", "DeadlineExceeded", "EndpointPool",
    "EndpointSpec", "FakeClock", "LastNumber", "LocalPool", "Result", "RunDeadlineExceeded",
    "RunFailed", "RunError", "RunEvent", "RunObserver", "RunResult", "Runtime", "TTSChatModel",
    "TTSConfig",
    "TTSExecutor",
    "current_deadline", "deadline_scope", "get_budget", "load_graph", "load_profile", "run",
    "run_sync",
}  # fmt: skip

PACKAGES = [
    "agentrt.core", "agentrt.pool", "agentrt.tts", "agentrt.tts.probe", "agentrt.budget",
    "agentrt.tasks", "agentrt.tracing", "agentrt.langgraph", "agentrt.tuning",
    "agentrt.tuning.probe", "agentrt.serve", "agentrt.cli",
]  # fmt: skip


def _sorted_like_isort(names: list[str]) -> bool:
    return names == sorted(names, key=lambda n: (not n.isupper(), n))


def test_all_is_sorted_and_exact() -> None:
    assert agentrt.__all__ == sorted(agentrt.__all__)
    assert set(agentrt.__all__) == EXPECTED
    assert set(agentrt._MODULE_OF) == EXPECTED


def test_every_name_resolves_and_is_documented() -> None:
    for name in agentrt.__all__:
        value = getattr(agentrt, name)
        assert value.__doc__, f"agentrt.{name} has no docstring"
        assert name in dir(agentrt)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        agentrt.Nope  # noqa: B018


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_exports_exactly_its_sorted_all(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    assert _sorted_like_isort(exported) or exported == sorted(exported), f"{name}.__all__"
    public = {
        n
        for n, v in vars(package).items()
        if not n.startswith("_") and not isinstance(v, ModuleType) and n != "annotations"
    }
    assert public == set(exported), f"{name}: public names differ from __all__"
    for n in exported:
        assert getattr(package, n) is not None


def test_import_agentrt_loads_no_application_dependency() -> None:
    code = (
        "import agentrt, sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'rich','typer','matplotlib'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_no_library_module_imports_the_application() -> None:
    """Every library module imports cleanly without typer/rich/matplotlib being
    reached from agentrt's own code (httpx may load rich for its own CLI)."""
    root = Path(agentrt.__file__).parent
    modules = [
        ".".join(("agentrt", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for p in sorted(root.rglob("*.py"))
        if p.relative_to(root).parts[0] != "cli"
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('agentrt.cli', 'benchmarks'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
