"""The local server's dtype comes from the CPU's flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.pool import LocalPool, choose_dtype, cpu_flags, cpu_model
from agentrt.pool._local import _arg_value

ZEN5 = "fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni"
ZEN2 = "fpu sse2 avx2 fma f16c"  # the AVX2-only EPYC where bf16 ran 7.5x slower
SAPPHIRE = "avx2 avx512f amx_bf16 amx_tile amx_int8"


@pytest.mark.parametrize(
    ("flags", "dtype"),
    [(ZEN5, "bfloat16"), (SAPPHIRE, "bfloat16"), (ZEN2, "float32"), ("", "float32")],
)
def test_bf16_only_where_the_cpu_computes_it_natively(flags: str, dtype: str) -> None:
    choice = choose_dtype(flags.split())
    assert choice.dtype == dtype
    assert choice.reason


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(
        f"processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: {flags}\n\n"
        f"processor\t: 1\nmodel name\t: AMD EPYC 7B12\nflags\t\t: {flags}\n"
    )
    return path


def test_flags_and_model_are_read_from_cpuinfo(tmp_path: Path) -> None:
    path = _cpuinfo(tmp_path, ZEN2)
    assert cpu_flags(path) == frozenset(ZEN2.split())
    assert cpu_model(path) == "AMD EPYC 7B12"


def test_an_unreadable_cpuinfo_means_no_flags_and_float32(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert cpu_flags(missing) == frozenset()
    assert choose_dtype(cpu_flags(missing)).dtype == "float32"


def test_this_machine_gets_a_choice() -> None:
    assert choose_dtype(cpu_flags()).dtype in {"bfloat16", "float32"}


class _Popen:
    def __init__(self, args: list[str], **_: object) -> None:
        self.args = args
        self.pid = 4242


@pytest.mark.parametrize(
    ("extra", "flags", "dtype", "passed"),
    [
        ([], ZEN2, "float32", ["--dtype", "float32"]),
        ([], ZEN5, "bfloat16", ["--dtype", "bfloat16"]),
        (["--dtype", "float16"], ZEN5, "float16", []),
        (["--dtype=float32"], ZEN5, "float32", []),
    ],
)
def test_the_launcher_passes_the_choice_unless_extra_args_set_one(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    extra: list[str],
    flags: str,
    dtype: str,
    passed: list[str],
) -> None:
    import agentrt.pool._local as local

    started: list[_Popen] = []

    def popen(args: list[str], **kwargs: object) -> _Popen:
        started.append(_Popen(args, **kwargs))
        return started[-1]

    monkeypatch.setattr(local.subprocess, "Popen", popen)
    monkeypatch.setattr(local, "cpu_flags", lambda: frozenset(flags.split()))
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path))
    record = LocalPool()._spawn(
        group="plain", model_path=tmp_path, kv_cache_gib=1, max_model_len=512,
        extra_args=extra, index=0,
    )  # fmt: skip
    args = started[0].args
    assert record.dtype == dtype and record.dtype_reason
    assert _arg_value(args, "--dtype") == dtype
    if passed:
        assert args[args.index("--dtype") :][:2] == passed
    assert args.count("--dtype") + sum(a.startswith("--dtype=") for a in args) == 1
