"""Files that other processes re-read (the local pool's state, tuned profiles and
their models, calibrations) are replaced whole: written to a temporary file
beside the target, fsynced, renamed over it. A reader never sees half a file,
and a write interrupted before the rename leaves the old file as it was."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

import agentrt.pool._local as local
from agentrt.budget import load_profile
from agentrt.core._files import atomic_write_text
from agentrt.core._settings import Settings
from agentrt.pool._local import LocalPool, ServerRecord
from agentrt.tts._calibration_store import render_calibration, write_atomic
from agentrt.tuning._fit import Fit
from agentrt.tuning._profile_writer import models_path, write_tuned

RECORD = ServerRecord(
    name="plain-0", group="plain", pid=1, port=40001, log_path="x", model_path="m",
    served_model="m",
)  # fmt: skip


def _state(tmp_path: Path) -> tuple[list[Path], Callable[[], None]]:
    pool = LocalPool(Settings(home=tmp_path / "home"))
    return [pool.state_path], lambda: pool._write(local._State((RECORD,)))


def _tuned(tmp_path: Path) -> tuple[list[Path], Callable[[], None]]:
    path = tmp_path / "budgets" / "math.tuned.toml"
    profile = load_profile("budgets/default.toml")
    fitted = Fit(latency={}, nodes={}, runs=0, calls=0, calls_per_run=None)

    def write() -> None:
        write_tuned(path, fitted, profile, "tuned")

    return [path, models_path(path)], write


def _calibration(tmp_path: Path) -> tuple[list[Path], Callable[[], None]]:
    path = tmp_path / "calibration" / "abc123.toml"
    text = render_calibration({"fingerprint": {"local": True}}, "# measured\n")
    return [path], lambda: write_atomic(path, text)


WRITERS = {"pool state": _state, "tuned profile": _tuned, "calibration": _calibration}


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_a_write_goes_through_a_synced_temporary_file_and_a_rename(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writer: Callable[[Path], tuple[list[Path], Callable[[], None]]],
) -> None:
    targets, write = writer(tmp_path)
    renames: list[tuple[Path, Path]] = []
    synced: list[int] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(src: str | Path, dst: str | Path) -> None:
        renames.append((Path(src), Path(dst)))
        real_replace(src, dst)

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    write()
    for target in targets:
        (source,) = [src for src, dst in renames if dst == target]
        assert source.parent == target.parent and source != target
        assert target.read_text()
    assert len(synced) >= len(targets)


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_an_interrupted_write_leaves_the_old_file_whole(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writer: Callable[[Path], tuple[list[Path], Callable[[], None]]],
) -> None:
    targets, write = writer(tmp_path)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("the old file\n")
    before = {p for t in targets for p in t.parent.iterdir()}

    def crash(src: str | Path, dst: str | Path) -> None:
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="before the rename"):
        write()
    assert [t.read_text() for t in targets] == ["the old file\n"] * len(targets)
    assert {p for t in targets for p in t.parent.iterdir()} == before  # no temporary left


def test_the_pool_key_file_is_private_from_its_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    real = atomic_write_text

    def spy(path: Path, text: str, *, mode: int | None = None) -> None:
        modes.append(-1 if mode is None else mode)
        real(path, text, mode=mode)

    monkeypatch.setattr(local, "atomic_write_text", spy)
    pool = LocalPool(Settings(home=tmp_path / "home"))
    key = pool._key_for_start(fresh=True)
    assert modes == [0o600]  # set on the temporary file before the key is written
    assert pool.key_path.read_text().strip() == key.get_secret_value()
    assert (pool.key_path.stat().st_mode & 0o777) == 0o600
