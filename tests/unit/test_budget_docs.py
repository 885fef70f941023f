"""docs/budgets.md: the worked example's printed numbers come from the code."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "budgets.md"


def test_worked_example_output_matches_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = text[text.index("## Worked example") :]
    script = re.search(r"```python\n(.*?)```", example, re.S)
    output = re.search(r"Output:\n\n```\n(.*?)```", example, re.S)
    assert script is not None and output is not None
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(script.group(1), str(DOC), "exec"), {"__name__": "budget_example"})
    assert printed.getvalue().strip() == output.group(1).strip()
