"""Settings for the whole suite.

Hypothesis's per-example deadline (200 ms by default) is a timed assertion, and
these machines are shared and of unknown speed: the suite turns it off and
keeps every property test's example count bounded instead. ``spans`` is the
real OpenTelemetry SDK with an in-memory exporter, installed for one test.
"""

from collections.abc import Iterator

import pytest
from hypothesis import settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentrt.tracing import use_tracer_provider

settings.register_profile("agentrt", deadline=None)
settings.load_profile("agentrt")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with use_tracer_provider(provider):
        yield exporter
