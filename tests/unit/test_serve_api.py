"""``agentrt.serve``'s public names are exactly its sorted ``__all__``, each documented,
and importing it loads no command (typer, agentrt.cli) or plotting library."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import agentrt.serve


def test_all_is_sorted_exact_and_documented() -> None:
    exported = list(agentrt.serve.__all__)
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    public = {
        n
        for n, v in vars(agentrt.serve).items()
        if not n.startswith("_") and not isinstance(v, ModuleType) and n != "annotations"
    }
    assert public == set(exported)
    for name in exported:
        value = getattr(agentrt.serve, name)
        assert value.__doc__ or isinstance(value, str | float), f"{name} has no docstring"


def test_importing_serve_loads_no_command_line_dependency() -> None:
    # (rich is not checked: httpx imports it for its own command line when it is installed)
    code = (
        "import agentrt.serve, sys; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'typer', 'matplotlib'} or m.startswith('agentrt.cli')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
