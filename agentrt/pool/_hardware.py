"""Fit the local server to the machine it runs on: the dtype from the CPU's flags.

A CPU without native bf16 runs bf16 matrix work several times slower than
fp32 (measured on an AVX2-only AMD EPYC: a 576x576 vector-matrix product 7.5x
slower, one n=8 call of 24 tokens 16 s in bf16 and 6.3 s in fp32), so the
local pool serves bf16 only where the CPU computes it natively
(``avx512_bf16`` or AMX) and float32 everywhere else.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NATIVE_BF16_FLAGS",
    "DtypeChoice",
    "choose_dtype",
    "cpu_family",
    "cpu_flags",
    "cpu_model",
]

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""``/proc/cpuinfo`` flags of x86 CPUs that compute bf16 natively."""

_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype the local servers run, and why."""

    dtype: str
    reason: str


def choose_dtype(flags: Iterable[str]) -> DtypeChoice:
    """``bfloat16`` where the CPU has native bf16, else ``float32`` (pure)."""
    native = sorted(NATIVE_BF16_FLAGS.intersection(flags))
    if native:
        return DtypeChoice("bfloat16", f"the CPU computes bf16 natively ({', '.join(native)})")
    return DtypeChoice(
        "float32", "the CPU has no native bf16 (no avx512_bf16 or amx_bf16): fp32 is faster"
    )


def _cpuinfo_field(name: str, cpuinfo: Path) -> str | None:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(cpuinfo: Path = _CPUINFO) -> frozenset[str]:
    """The first CPU's flags (empty where ``/proc/cpuinfo`` cannot be read)."""
    flags = _cpuinfo_field("flags", cpuinfo)
    return frozenset(flags.split()) if flags else frozenset()


def cpu_family(cpuinfo: Path = _CPUINFO) -> str | None:
    """The CPU family number (``lscpu``'s "CPU family": 26 is AMD Zen 5), if known."""
    return _cpuinfo_field("cpu family", cpuinfo)


def cpu_model(cpuinfo: Path = _CPUINFO) -> str:
    """The CPU's model name, as ``lscpu`` shows it."""
    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or platform.machine()
