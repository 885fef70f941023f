"""Torch threading for the probe's small networks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["one_torch_thread"]


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for the block, then restore the setting.

    The probe's networks are tiny: extra threads only add synchronisation, and
    on a CPU shared with vLLM servers a spinning worker thread that loses its
    core stalls every operation (measured: 0.3 s on one thread against 1-9 s
    on two for the same training run under load).
    """
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)
