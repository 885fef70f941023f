"""``agentrt.serve``'s public names are each documented, and importing it loads no
command (typer, agentrt.cli) or plotting library."""

from __future__ import annotations

import subprocess
import sys

import agentrt.serve


def test_every_public_name_is_documented() -> None:
    # That __all__ is sorted and exact is test_public_api's, for every package.
    for name in agentrt.serve.__all__:
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
