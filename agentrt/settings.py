"""Process-wide settings from the environment (``AGENTRT_*``), via pydantic-settings.

``AGENTRT_ENDPOINTS``       comma-separated ``[group=]url`` entries, e.g.
                            ``plain=http://gpu1:8000,spec=http://gpu2:8000``
``AGENTRT_ENDPOINTS_FILE``  a TOML file with ``[[endpoints]]`` tables
``AGENTRT_HOME``            where the prepared model, pool state and logs live
                            (default ``~/.cache/agentrt``)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_home"]


def default_home() -> Path:
    return Path.home() / ".cache" / "agentrt"


class Settings(BaseSettings):
    """Settings read from ``AGENTRT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="AGENTRT_", extra="ignore")

    endpoints: str | None = None
    endpoints_file: Path | None = None
    home: Path = Field(default_factory=default_home)

    @property
    def model_dir(self) -> Path:
        return self.home / "models"

    @property
    def pool_dir(self) -> Path:
        return self.home / "pool"
