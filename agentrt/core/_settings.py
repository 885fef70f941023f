"""Process-wide settings from the environment (``AGENTRT_*``), via pydantic-settings,
and the one place that resolves where agentrt's files are.

``AGENTRT_ENDPOINTS``       comma-separated ``[group=]url`` entries, e.g.
                            ``plain=http://gpu1:8000,spec=http://gpu2:8000``
``AGENTRT_ENDPOINTS_FILE``  a TOML file with ``[[endpoints]]`` tables
``AGENTRT_HOME``            where the prepared model, pool state, logs and a
                            calibration measured outside a project live
                            (default ``~/.cache/agentrt``)
``AGENTRT_MODEL_DIR``       where prepared models live (default ``<home>/models``)
``AGENTRT_PROJECT_DIR``     the project: the directory holding ``budgets/``
                            (default: the first of the working directory and its
                            parents that has a ``budgets/`` folder)
``AGENTRT_CALIBRATION``     the latency calibration file to use (default: see
                            :meth:`Settings.find_calibration`)
``AGENTRT_AUTO_CALIBRATE``  ``0`` turns off the quick calibration that ``agentrt up``
                            and the first run on an uncalibrated local pool make
                            (default on; tests and CI may turn it off)
``AGENTRT_DATA_DIR``        the data shipped with agentrt (default: ``agentrt/_data``
                            in an installed wheel, none in a source checkout)

A file under ``budgets/`` (a graph's ``PROFILE``, the calibration prior) is
looked up in the project, then in the copy of ``budgets/`` shipped in the
wheel (``agentrt/_data/budgets``), so an installed agentrt runs outside the
repository too. Where nothing is found the error lists every path looked at.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path, PurePath

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentrt.core._errors import ConfigurationError

__all__ = [
    "BUDGETS",
    "DEFAULT_CALIBRATION",
    "Settings",
    "default_home",
    "packaged_data_dir",
]

BUDGETS = "budgets"
"""The project folder of budget profiles and calibration priors."""
DEFAULT_CALIBRATION = PurePath(BUDGETS, "calibration", "local-pool.toml")
"""The local pool's latency calibration, relative to the project (``agentrt calibrate``)."""
_HOW = "run from the project (the directory holding budgets/) or set AGENTRT_PROJECT_DIR to it"


def default_home() -> Path:
    return Path.home() / ".cache" / "agentrt"


def packaged_data_dir() -> Path | None:
    """``agentrt/_data`` inside an installed wheel (it holds a copy of ``budgets/``);
    None in a source checkout, where the project's ``budgets/`` is used."""
    data = importlib.resources.files("agentrt") / "_data"
    return data if isinstance(data, Path) and data.is_dir() else None


class Settings(BaseSettings):
    """Settings read from ``AGENTRT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="AGENTRT_", extra="ignore", populate_by_name=True)

    endpoints: str | None = None
    endpoints_file: Path | None = None
    home: Path = Field(default_factory=default_home)
    models: Path | None = Field(default=None, alias="AGENTRT_MODEL_DIR")
    project_dir: Path | None = None
    calibration: Path | None = None
    auto_calibrate: bool = True
    deadline_priority: bool = False
    """Local servers get each request's deadline as its vLLM priority (earliest
    deadline first). Off: measured no gain at 1x load and 0.85x the SLA-met rate
    at 2x (docs/serving.md)."""
    data_dir: Path | None = Field(default_factory=packaged_data_dir)

    @property
    def model_dir(self) -> Path:
        return self.models or self.home / "models"

    @property
    def pool_dir(self) -> Path:
        return self.home / "pool"

    @property
    def calibration_dir(self) -> Path:
        """Where calibrations are cached, one per pool fingerprint (``<hash>.toml``)."""
        return self.home / "calibration"

    def project(self, cwd: Path | None = None) -> Path | None:
        """``AGENTRT_PROJECT_DIR``, else the first of ``cwd`` (default: the working
        directory) and its parents that holds a ``budgets/`` folder, else None."""
        if self.project_dir is not None:
            return self.project_dir
        start = (cwd or Path.cwd()).resolve()
        for folder in (start, *start.parents):
            if (folder / BUDGETS).is_dir():
                return folder
        return None

    def _candidates(self, relative: PurePath, cwd: Path | None) -> list[Path]:
        """Where a project-relative file (``budgets/...``) may be, in order."""
        found: list[Path] = []
        project = self.project(cwd)
        if project is not None:
            found.append(project / relative)
        if self.data_dir is not None and relative.parts[:1] == (BUDGETS,):
            found.append(self.data_dir / relative)
        return found

    def find_budget_file(self, reference: str | PurePath, cwd: Path | None = None) -> Path | None:
        """A file named relative to the project, like a graph's ``PROFILE =
        "budgets/math.toml"``: as given when it exists (absolute, or relative to the
        working directory), else in the project, else in the packaged ``budgets/``."""
        given = Path(reference)
        if given.is_absolute():
            return given if given.is_file() else None
        if (cwd or Path.cwd()).joinpath(given).is_file():
            return given if cwd is None else cwd / given
        return next((p for p in self._candidates(given, cwd) if p.is_file()), None)

    def budget_file(self, reference: str | PurePath, cwd: Path | None = None) -> Path:
        """:meth:`find_budget_file`, or a :class:`ConfigurationError` naming every
        path looked at and how to point agentrt at the project."""
        found = self.find_budget_file(reference, cwd)
        if found is not None:
            return found
        given = Path(reference)
        looked = [given if given.is_absolute() else (cwd or Path.cwd()) / given]
        if not given.is_absolute():
            looked += self._candidates(given, cwd)
        raise ConfigurationError(
            f"{str(reference)!r} not found: looked at {_listed(looked)} "
            f"({self._project_note(cwd)}); {_HOW}"
        )

    def find_calibration(self, cwd: Path | None = None) -> Path | None:
        """The latency calibration: ``AGENTRT_CALIBRATION``; else
        ``<project>/budgets/calibration/local-pool.toml``; else the one ``agentrt
        calibrate`` wrote outside a project (``<home>/calibration/local-pool.toml``);
        else the packaged prior; else None. A set ``AGENTRT_CALIBRATION`` that is
        not a file is an error."""
        if self.calibration is not None:
            if not self.calibration.is_file():
                raise ConfigurationError(
                    f"AGENTRT_CALIBRATION={self.calibration} is not a file: "
                    "point it at a calibration TOML (`agentrt calibrate -o FILE` writes one)"
                )
            return self.calibration
        return next((p for p in self._calibration_candidates(cwd) if p.is_file()), None)

    def calibration_path(self, cwd: Path | None = None) -> Path:
        """:meth:`find_calibration`, or a :class:`ConfigurationError` naming every
        path looked at and how to set one."""
        found = self.find_calibration(cwd)
        if found is not None:
            return found
        raise ConfigurationError(
            f"no latency calibration found: looked at "
            f"{_listed(self._calibration_candidates(cwd))} ({self._project_note(cwd)}); "
            "run `agentrt calibrate`, "
            f"set AGENTRT_CALIBRATION to a calibration file, or {_HOW}"
        )

    def calibration_output(self, cwd: Path | None = None) -> Path:
        """Where ``agentrt calibrate`` writes by default: ``AGENTRT_CALIBRATION``,
        else the project's ``budgets/calibration/local-pool.toml``, else
        ``<home>/calibration/local-pool.toml``."""
        if self.calibration is not None:
            return self.calibration
        project = self.project(cwd)
        return project / DEFAULT_CALIBRATION if project is not None else self._home_calibration

    def _project_note(self, cwd: Path | None) -> str:
        if self.project_dir is not None:
            return f"project {self.project_dir} from AGENTRT_PROJECT_DIR"
        project = self.project(cwd)
        start = (cwd or Path.cwd()).resolve()
        if project is None:
            return f"no project: no budgets/ folder in {start} or its parents"
        return f"project {project}, found from {start}"

    @property
    def _home_calibration(self) -> Path:
        return self.home / DEFAULT_CALIBRATION.relative_to(BUDGETS)

    def _calibration_candidates(self, cwd: Path | None) -> list[Path]:
        found: list[Path] = []
        project = self.project(cwd)
        if project is not None:
            found.append(project / DEFAULT_CALIBRATION)
        found.append(self._home_calibration)
        if self.data_dir is not None:
            found.append(self.data_dir / DEFAULT_CALIBRATION)
        return found


def _listed(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths) if paths else "nothing (no project, no packaged data)"
