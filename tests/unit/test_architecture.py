"""docs/architecture.md draws the import-linter contracts of pyproject.toml: keep them in step."""

from __future__ import annotations

import re
import tomllib
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contract_layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [
        [part.strip().removeprefix("agentrt.") for part in layer.split("|")]
        for layer in layers["layers"]
    ]


def _diagram() -> tuple[list[str], set[tuple[str, str]]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- layers:.*?-->\n```mermaid\n(.*?)```", text, re.S)
    assert block is not None, "docs/architecture.md has no layers diagram"
    nodes: list[str] = []
    edges: set[tuple[str, str]] = set()
    for line in block.group(1).splitlines():
        line = line.strip()
        box = re.fullmatch(r'(\w+)\["[^"]*"\]', line)
        if box:
            nodes.append(box.group(1))
        elif "-->" in line:
            chain = [part.strip() for part in line.split("-->")]
            edges |= set(pairwise(chain))
    return nodes, edges


def test_the_diagram_draws_the_layers_contract_in_order() -> None:
    layers = _contract_layers()
    nodes, edges = _diagram()
    assert nodes == [name for layer in layers for name in layer]
    expected = {
        (upper, lower) for above, below in pairwise(layers) for upper in above for lower in below
    }
    assert edges == expected


def test_every_box_is_a_folder_and_every_folder_a_box() -> None:
    nodes, _ = _diagram()
    folders = {p.parent.name for p in (ROOT / "agentrt").glob("*/__init__.py")}
    assert set(nodes) == folders
