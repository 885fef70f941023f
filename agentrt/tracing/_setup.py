"""Where spans go: the tracer provider, its exporters, and flushing.

Exporters are chosen by the standard variables: ``OTEL_TRACES_EXPORTER`` (a
comma list of ``otlp``, ``console``, ``none``, plus agentrt's ``jsonl``);
when it is unset, local runs write JSONL under ``traces/`` (``AGENTRT_TRACES_DIR``)
and add OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set. The OTLP exporter reads its
endpoint, headers, timeout and certificates from the ``OTEL_EXPORTER_OTLP_*``
variables itself; ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` picks
``http/protobuf`` (default) or ``grpc``. ``OTEL_SDK_DISABLED=true`` turns
everything off.

Metrics (:mod:`agentrt.tracing._metrics`) get a meter provider next to the
tracer provider, with the same resource: a Prometheus reader always, plus
OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is set; ``OTEL_METRICS_EXPORTER`` (a
comma list of ``prometheus``, ``otlp``, ``console``, ``none``) picks exactly.

agentrt's spans go to, in order: a provider made current with
:func:`use_tracer_provider` (tests), the provider :func:`configure_tracing`
set up, or the application's global OpenTelemetry provider.

Flushing never runs on the event loop: :func:`request_flush` (what the end of
a run calls) hands it to the flusher thread of :mod:`agentrt.tracing._flush`
and returns at once; :func:`flush_traces_async` awaits it and
:func:`flush_traces` blocks its (sync) caller for it, both for a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from agentrt.core._errors import ConfigurationError
from agentrt.core._log import logger
from agentrt.tracing._flush import FLUSH_TIMEOUT_MS, flusher
from agentrt.tracing._instruments import Metrics
from agentrt.tracing._jsonl import JsonlSpanExporter
from agentrt.tracing._metric_readers import METRIC_EXPORTER_NAMES, build_meter_provider
from agentrt.tracing._otlp import otlp_exporter

__all__ = [
    "EXPORTER_NAMES",
    "Tracing",
    "TracingSettings",
    "configure_tracing",
    "current_tracing",
    "ensure_tracing",
    "flush_traces",
    "flush_traces_async",
    "get_tracer",
    "request_flush",
    "shutdown_tracing",
    "use_tracer_provider",
]

EXPORTER_NAMES = ("jsonl", "otlp", "console")
TRACER_NAME = "agentrt"
DEFAULT_TRACES_DIR = Path("traces")
_TRUE = frozenset({"1", "true", "yes", "on"})


@functools.cache
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("agentrt")
    except Exception:  # pragma: no cover - not installed (running from a checkout)
        return "0"


@dataclass(frozen=True)
class TracingSettings:
    """Which exporters to use and where JSONL files go; ``metric_exporters``
    are the metric readers' (:data:`METRIC_EXPORTER_NAMES`)."""

    exporters: tuple[str, ...] = ("jsonl",)
    traces_dir: Path = DEFAULT_TRACES_DIR
    service_name: str = "agentrt"
    otlp_protocol: str = "http/protobuf"
    resource: Mapping[str, str] = field(default_factory=dict)
    metric_exporters: tuple[str, ...] = ("prometheus",)

    def __post_init__(self) -> None:
        unknown = [e for e in self.exporters if e not in EXPORTER_NAMES]
        if unknown:
            raise ConfigurationError(
                f"unknown trace exporter(s) {unknown}; choose from {list(EXPORTER_NAMES)}"
            )
        unknown = [e for e in self.metric_exporters if e not in METRIC_EXPORTER_NAMES]
        if unknown:
            raise ConfigurationError(
                f"unknown metric exporter(s) {unknown} (OTEL_METRICS_EXPORTER); "
                f"choose from {list(METRIC_EXPORTER_NAMES)}"
            )
        if self.otlp_protocol not in ("http/protobuf", "grpc"):
            raise ConfigurationError(
                "OTEL_EXPORTER_OTLP_PROTOCOL must be 'http/protobuf' or 'grpc', "
                f"got {self.otlp_protocol!r}"
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, local: bool = True
    ) -> TracingSettings:
        """Settings from the standard variables; ``local`` runs default to JSONL."""
        env = os.environ if environ is None else environ
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        traces_dir = Path(env.get("AGENTRT_TRACES_DIR") or DEFAULT_TRACES_DIR)
        service = env.get("OTEL_SERVICE_NAME") or "agentrt"
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
            return cls((), traces_dir, service, protocol, metric_exporters=())
        chosen = env.get("OTEL_TRACES_EXPORTER")
        if chosen is not None and chosen.strip():
            names = [n.strip().lower() for n in chosen.split(",") if n.strip()]
            exporters = tuple(dict.fromkeys(n for n in names if n != "none"))
        else:
            wanted = ["jsonl"] if local else []
            if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            ):
                wanted.append("otlp")
            exporters = tuple(wanted)
        return cls(
            exporters, traces_dir, service, protocol, metric_exporters=_metric_exporters(env)
        )


def _metric_exporters(env: Mapping[str, str]) -> tuple[str, ...]:
    """``OTEL_METRICS_EXPORTER`` when set; else Prometheus, plus OTLP when the
    OTLP endpoint for every signal (or for metrics) is set."""
    chosen = env.get("OTEL_METRICS_EXPORTER")
    if chosen is not None and chosen.strip():
        names = [n.strip().lower() for n in chosen.split(",") if n.strip()]
        return tuple(dict.fromkeys(n for n in names if n != "none"))
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        return ("prometheus", "otlp")
    return ("prometheus",)


class Tracing:
    """A tracer provider with agentrt's exporters, and the meter provider
    beside it with agentrt's instruments (see :func:`configure_tracing`)."""

    def __init__(self, settings: TracingSettings) -> None:
        self.settings = settings
        attributes: dict[str, str] = {
            "service.name": settings.service_name,
            "service.version": _version(),
            **settings.resource,
        }
        resource = Resource.create(attributes)
        self.provider = TracerProvider(resource=resource)
        self.jsonl: JsonlSpanExporter | None = None
        for name in settings.exporters:
            exporter: SpanExporter
            if name == "jsonl":
                exporter = self.jsonl = JsonlSpanExporter(settings.traces_dir)
            elif name == "otlp":
                exporter = otlp_exporter(settings.otlp_protocol, "trace")
            else:
                exporter = ConsoleSpanExporter()
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        meters = build_meter_provider(
            settings.metric_exporters, resource, otlp_protocol=settings.otlp_protocol
        )
        self.meter_provider = meters.provider
        self.metrics_registry = meters.registry
        """The Prometheus reader's registry (``None`` without one)."""
        self.metrics = Metrics(self.meter_provider, _version())

    def flush(self, timeout_ms: int = FLUSH_TIMEOUT_MS) -> bool:
        """Export every finished span now, waiting at most ``timeout_ms`` (sync
        callers; the flush itself runs on the flusher thread)."""
        return _wait(flusher().request(self.provider), timeout_ms / 1000)

    def shutdown(self) -> None:
        self.provider.shutdown()
        self.meter_provider.shutdown()


_lock = threading.Lock()
_configured: Tracing | None = None
_override: contextvars.ContextVar[trace.TracerProvider | None] = contextvars.ContextVar(
    "agentrt_tracer_provider", default=None
)


def configure_tracing(
    settings: TracingSettings | None = None, *, set_global: bool = False
) -> Tracing:
    """Set up agentrt's tracer provider (replacing, and flushing, a previous one).

    ``settings`` default to :meth:`TracingSettings.from_env`. With ``set_global``
    the provider also becomes OpenTelemetry's global one, so other
    instrumentation in the process joins the same traces.
    """
    global _configured
    tracing = Tracing(settings or TracingSettings.from_env())
    with _lock:
        previous, _configured = _configured, tracing
    if previous is not None:
        previous.shutdown()
    if set_global:
        trace.set_tracer_provider(tracing.provider)
    return tracing


def current_tracing() -> Tracing | None:
    """The provider :func:`configure_tracing` set up, if any."""
    return _configured


def shutdown_tracing() -> None:
    """Flush and drop the configured provider (spans go to the global one again)."""
    global _configured
    with _lock:
        previous, _configured = _configured, None
    if previous is not None:
        previous.shutdown()


def _global_is_sdk() -> bool:
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def ensure_tracing(settings: TracingSettings | None = None) -> Tracing | None:
    """What a run calls first: keep the configured provider, or the
    application's own SDK provider when it set one globally (returns None),
    else configure from the environment."""
    if _configured is not None:
        return _configured
    if _override.get() is not None or _global_is_sdk():
        return None
    return configure_tracing(settings)


@contextmanager
def use_tracer_provider(provider: trace.TracerProvider) -> Iterator[trace.TracerProvider]:
    """Send agentrt's spans to ``provider`` inside the block (for tests and embedding)."""
    token = _override.set(provider)
    try:
        yield provider
    finally:
        _override.reset(token)


def _provider() -> trace.TracerProvider:
    override = _override.get()
    if override is not None:
        return override
    if _configured is not None:
        return _configured.provider
    return trace.get_tracer_provider()


_tracers: weakref.WeakKeyDictionary[trace.TracerProvider, trace.Tracer] = (
    weakref.WeakKeyDictionary()
)


def get_tracer() -> trace.Tracer:
    """The tracer agentrt's spans are made with, one per provider.

    Kept, not asked for each span: the SDK's ``get_tracer`` adds a warnings filter
    on every call (which also empties every module's warnings cache), a tenth of a
    millisecond per call on the executor's path."""
    provider = _provider()
    try:
        return _tracers[provider]
    except (KeyError, TypeError):  # TypeError: a provider that takes no weak reference
        tracer = provider.get_tracer(TRACER_NAME, _version())
        with contextlib.suppress(TypeError):
            _tracers[provider] = tracer
        return tracer


def request_flush() -> Future[bool] | None:
    """Have the flusher thread flush whichever provider agentrt's spans go to,
    and return at once (``None`` for a non-SDK provider: nothing to flush).

    What the end of a run calls on the event loop: a slow or absent collector
    then delays nothing but the flusher thread."""
    provider = _provider()
    if not isinstance(provider, TracerProvider):
        return None
    return flusher().request(provider)


def _wait(future: Future[bool], timeout_s: float) -> bool:
    try:
        return future.result(timeout=timeout_s)
    except TimeoutError:
        future.cancel()
        logger.debug("traces not flushed within %.1fs; spans stay queued", timeout_s)
        return False


def flush_traces(timeout_ms: int = FLUSH_TIMEOUT_MS) -> bool:
    """Flush whichever provider agentrt's spans go to and wait at most
    ``timeout_ms`` for it (True: flushed; a non-SDK provider has nothing to flush).

    Blocks the calling thread: for sync callers (the CLI after its event loop
    ended, scripts, tests). On an event loop, await :func:`flush_traces_async`."""
    future = request_flush()
    return True if future is None else _wait(future, timeout_ms / 1000)


async def flush_traces_async(timeout_s: float = FLUSH_TIMEOUT_MS / 1000) -> bool:
    """:func:`flush_traces` for a coroutine: the flush runs on the flusher
    thread and the loop keeps serving other tasks while this one waits, at
    most ``timeout_s`` (False when it did not finish in time: the spans stay
    queued for the next flush, or the flush at exit)."""
    future = request_flush()
    if future is None:
        return True
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except TimeoutError:
        logger.debug("traces not flushed within %.1fs; spans stay queued", timeout_s)
        return False


def jsonl_exporter() -> JsonlSpanExporter | None:
    """The JSONL exporter of the provider in use, if it has one."""
    override = _override.get()
    if override is not None:
        return None
    return _configured.jsonl if _configured is not None else None
