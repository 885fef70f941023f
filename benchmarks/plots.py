"""PNG plots of benchmark rows (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_branches", "plot_frontier", "pyplot", "save_figure"]


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG (making its folder) and release it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def plot_branches(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for group in sorted({r["group"] for r in rows}):
        at = [r for r in rows if r["group"] == group]
        ns = [r["n"] for r in at]
        left.plot(ns, [r["per_token_ms"] for r in at], marker="o", label=group)
        right.plot(ns, [r["throughput_tok_s"] for r in at], marker="o", label=group)
    ns = sorted({r["n"] for r in rows})
    for ax, label in ((left, "per-token time (ms)"), (right, "aggregate tokens/s")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("concurrent branches N")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_frontier(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = [r["candidate"] for r in rows if not str(r["candidate"]).startswith("oracle")]
    for name in dict.fromkeys(names):
        at = [r for r in rows if r["candidate"] == name]
        style = "-" if name in ("agentrt", "router", "greedy") else ":"
        ax.plot([r["deadline_s"] for r in at], [r["accuracy"] for r in at], style,
                marker="o", label=name, linewidth=2.2 if name == "agentrt" else 1.2)  # fmt: skip
    oracle = [r for r in rows if str(r["candidate"]).startswith("oracle")]
    ax.plot([r["deadline_s"] for r in oracle], [r["accuracy"] for r in oracle], "k--",
            label="oracle (best static)")  # fmt: skip
    ax.set_xscale("log", base=2)
    deadlines = sorted({r["deadline_s"] for r in rows})
    ax.set_xticks(deadlines, [f"{d:g}" for d in deadlines])
    ax.set_xlabel("deadline (s)")
    ax.set_ylabel("accuracy within the deadline")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
