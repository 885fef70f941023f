"""Running the app under uvicorn: one worker in this process, or ``workers`` processes.

With ``workers > 1`` uvicorn starts that many processes, each importing
:func:`app_from_env`, which rebuilds the same app from the :class:`ServeConfig`
the parent put in ``AGENTRT_SERVE_CONFIG``. Each worker opens its own Runtime
(its own pool connections and learned models) and counts its own in-flight
runs; threads are shared between workers only through a shared checkpointer
(PostgreSQL).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette

from agentrt.core._errors import ConfigurationError
from agentrt.core._redact import redact
from agentrt.core._validation import load
from agentrt.langgraph._loading import load_graph
from agentrt.serve._admission import DEFAULT_MAX_IN_FLIGHT
from agentrt.serve._app import create_app
from agentrt.serve._checkpoints import POSTGRES_SCHEMES

__all__ = ["CONFIG_ENV", "ServeConfig", "app_from_config", "app_from_env", "serve"]

CONFIG_ENV = "AGENTRT_SERVE_CONFIG"
"""The environment variable that hands a worker process its :class:`ServeConfig` (JSON)."""
GRACEFUL_SHUTDOWN_S = 10
"""Seconds uvicorn lets requests finish on shutdown before in-flight runs are cancelled."""


class ServeConfig(BaseModel):
    """What ``agentrt serve`` was asked to serve, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    graphs: tuple[str, ...] = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=2024, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    checkpointer: str | None = None
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1)
    metrics_dir: str | None = None
    """Where the workers publish their metrics for one another (``workers > 1``)."""


def _check_checkpointer(url: str | None) -> None:
    """The checkpointer URL is checked before any worker starts (its connection is
    opened by each worker at start-up)."""
    if url is not None and url != "memory" and not url.startswith(POSTGRES_SCHEMES):
        raise ConfigurationError(
            f"checkpointer must be 'memory' or a postgresql:// URL, got {redact(url)!r}"
        )


def app_from_config(config: ServeConfig) -> Starlette:
    """The app serving ``config.graphs`` (each loaded by path, ``graphs/NAME.py:graph``)."""
    _check_checkpointer(config.checkpointer)
    loaded = {}
    for spec in config.graphs:
        graph = load_graph(spec)
        if graph.name in loaded:
            raise ConfigurationError(f"two graphs are named {graph.name!r}: {spec!r}")
        loaded[graph.name] = graph
    return create_app(
        loaded,
        checkpointer_url=config.checkpointer,
        max_in_flight=config.max_in_flight,
        telemetry=True,
        shared_metrics_dir=Path(config.metrics_dir) if config.metrics_dir else None,
    )


def app_from_env() -> Starlette:
    """The app of a worker process (uvicorn's factory), from ``AGENTRT_SERVE_CONFIG``."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise ConfigurationError(f"{CONFIG_ENV} is not set: start workers with `agentrt serve`")
    return app_from_config(ServeConfig.model_validate_json(raw))


def serve(
    graphs: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 2024,
    workers: int = 1,
    checkpointer: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> None:
    """Serve ``graphs`` until interrupted. The graphs are loaded (and their profiles
    checked) here first, so a mistake is one error before any worker starts."""
    config = load(
        ServeConfig,
        {"graphs": list(graphs), "host": host, "port": port, "workers": workers,
         "checkpointer": checkpointer, "max_in_flight": max_in_flight},
        "agentrt serve",
    )  # fmt: skip
    app = app_from_config(config)  # every graph loaded, every profile parsed
    if config.workers == 1:
        uvicorn.run(
            app, host=config.host, port=config.port, lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )  # fmt: skip
        return
    with tempfile.TemporaryDirectory(prefix="agentrt-metrics-") as metrics_dir:
        shared = config.model_copy(update={"metrics_dir": metrics_dir})
        os.environ[CONFIG_ENV] = shared.model_dump_json()
        uvicorn.run(
            "agentrt.serve._server:app_from_env", factory=True, workers=config.workers,
            host=config.host, port=config.port, lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )  # fmt: skip
