"""Process-wide settings from the environment (``AGENTRT_*``), via pydantic-settings.

``AGENTRT_ENDPOINTS``       comma-separated ``[group=]url`` entries, e.g.
                            ``plain=http://gpu1:8000,spec=http://gpu2:8000``
``AGENTRT_ENDPOINTS_FILE``  a TOML file with ``[[endpoints]]`` tables
``AGENTRT_HOME``            where the prepared model, pool state and logs live
                            (default ``~/.cache/agentrt``)
``AGENTRT_MODEL_DIR``       where prepared models live (default ``<home>/models``)
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

    model_config = SettingsConfigDict(env_prefix="AGENTRT_", extra="ignore", populate_by_name=True)

    endpoints: str | None = None
    endpoints_file: Path | None = None
    home: Path = Field(default_factory=default_home)
    models: Path | None = Field(default=None, alias="AGENTRT_MODEL_DIR")

    @property
    def model_dir(self) -> Path:
        return self.models or self.home / "models"

    @property
    def pool_dir(self) -> Path:
        return self.home / "pool"
