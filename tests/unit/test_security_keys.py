"""Secrets and transport security: API keys come from the environment or a secrets
file and go only into their endpoint's Authorization header (never into spans,
logs, errors or snapshots, even when a server echoes them); TLS is verified
unless an endpoint opts out, and then only for that endpoint; the local pool
listens on loopback only."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentrt.core._errors import EndpointConfigError, EndpointError
from agentrt.core._settings import Settings
from agentrt.pool import EndpointPool, EndpointSpec, LocalPool
from agentrt.pool._config import endpoints_from_toml
from agentrt.tracing import (
    ChatSpans,
    TracingSettings,
    configure_tracing,
    shutdown_tracing,
    use_tracer_provider,
    workflow_span,
)
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import TTSExecutor
from tests.unit.vllm_double import FakeCluster, FakeVLLM

KEY = "sk-agentrt-test-7f3a9c1e5b"
MESSAGES = [{"role": "user", "content": "What is 3 plus 4?"}]


# -- where keys come from ---------------------------------------------------------


def test_api_key_file_is_read_relative_to_the_endpoints_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "gpu1.key").write_text(f"{KEY}\n", encoding="utf-8")
    path = tmp_path / "endpoints.toml"
    path.write_text(
        '[[endpoints]]\nurl = "https://gpu1:8000"\napi_key_file = "secrets/gpu1.key"\n',
        encoding="utf-8",
    )
    (spec,) = endpoints_from_toml(path, env={})
    assert spec.api_key is not None and spec.api_key.get_secret_value() == KEY
    assert KEY not in repr(spec) and KEY not in str(spec.model_dump())


@pytest.mark.parametrize(
    ("table", "secret", "message"),
    [
        ('api_key_file = "missing.key"', None, r"api_key_file: cannot read .*missing\.key"),
        ('api_key_file = "k"', "", "must hold one key on one line"),
        ('api_key_file = "k"', f"{KEY}\nsecond line", "must hold one key on one line"),
        ("api_key_file = 3", None, "api_key_file: must be a path, got 3"),
        ('api_key_file = "k"\napi_key_env = "X"', KEY, "api_key_env or api_key_file, not both"),
        (f'api_key = "{KEY}"', None, "do not write keys into config files"),
    ],
)
def test_api_key_file_mistakes_are_named_without_the_key(
    tmp_path: Path, table: str, secret: str | None, message: str
) -> None:
    if secret is not None:
        (tmp_path / "k").write_text(secret, encoding="utf-8")
    path = tmp_path / "endpoints.toml"
    path.write_text(f'[[endpoints]]\nurl = "http://a:1"\n{table}\n', encoding="utf-8")
    with pytest.raises(EndpointConfigError, match=message) as info:
        endpoints_from_toml(path, env={"X": KEY})
    assert KEY not in str(info.value)
    assert str(path) in str(info.value)


# -- where keys must not go -------------------------------------------------------


class EchoingServer(FakeVLLM):
    """A hostile server: it answers chat requests with 401 and echoes the headers it got."""

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chat/completions":
            self.request_headers.append(request.headers)
            echoed = dict(request.headers)
            return httpx.Response(401, json={"error": {"message": f"bad credentials {echoed}"}})
        return await super().handle(request)


async def _call_the_echoing_server(errors: list[str]) -> tuple[EchoingServer, str, Path | None]:
    server = EchoingServer()
    cluster = FakeCluster(a=server)
    spec = EndpointSpec(url=cluster.url("a"), api_key=KEY)  # type: ignore[arg-type]
    async with EndpointPool([spec], transport=cluster.transport, health_interval_s=0) as pool:
        with workflow_span("secret") as run:
            result = await TTSExecutor(pool, observer=ChatSpans()).run(
                MESSAGES,
                slice_s=2,
                config=TTSConfig("majority", 2, temperature=0.7, max_tokens=8),
            )
            exc = result.failure  # the call returns; its failure is what the chat model raises
            if isinstance(exc, EndpointError):
                errors.append(f"{exc!s} {exc!r} {exc.__cause__!r} {result.degraded_reason}")
        return server, json.dumps(pool.snapshot(), default=str), run.trace_file


async def test_the_key_is_nowhere_but_the_authorization_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with use_tracer_provider(provider):
        server, snapshot, _ = await _call_the_echoing_server(errors)
    configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=tmp_path))
    try:
        _, _, trace_file = await _call_the_echoing_server(errors)
    finally:
        shutdown_tracing()
    # The key did reach its server, in the one header meant for it ...
    assert server.request_headers[0]["authorization"] == f"Bearer {KEY}"
    # ... and nowhere else: errors (even echoed bodies), spans, trace files, logs, snapshot.
    assert len(errors) == 2, "the 401 should surface as an EndpointError"
    spans = json.dumps(
        [
            {
                "name": s.name,
                "attrs": dict(s.attributes or {}),
                "events": [dict(e.attributes or {}) for e in s.events],
                "status": s.status.description,
            }
            for s in exporter.get_finished_spans()
        ],
        default=str,
    )
    assert "chat" in spans and "bad credentials" in " ".join(errors)
    assert trace_file is not None and trace_file.is_file()
    for where, text in {
        "error": " ".join(errors),
        "spans": spans,
        "trace file": trace_file.read_text(encoding="utf-8"),
        "logs": caplog.text,
        "snapshot": snapshot,
    }.items():
        assert KEY not in text, f"the API key leaked into the {where}"


# -- TLS --------------------------------------------------------------------------


def _ssl_context(pool: EndpointPool, spec: EndpointSpec) -> ssl.SSLContext:
    """The TLS context the pool's requests to ``spec`` would use."""
    (state,) = [s for s in pool.endpoints if s.spec == spec]
    http: Any = pool.client(state)._http
    transport: Any = http._transport_for_url(httpx.URL(f"{spec.url}/v1/chat/completions"))
    context: ssl.SSLContext = transport._pool._ssl_context
    return context


async def test_tls_is_verified_by_default_and_opting_out_is_per_endpoint() -> None:
    strict = EndpointSpec(url="https://gpu1.example:8443")
    lax = EndpointSpec(url="https://lab.example:8443", verify_tls=False)
    pool = EndpointPool([strict, lax], health_interval_s=0)
    try:
        verified = _ssl_context(pool, strict)
        assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
        unverified = _ssl_context(pool, lax)
        assert unverified.verify_mode == ssl.CERT_NONE
    finally:
        await pool.aclose()


# -- the local pool stays on loopback ---------------------------------------------


class _FakeProcess:
    pid = 424242


def test_the_launcher_binds_local_servers_to_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[list[str]] = []

    def fake_popen(args: list[str], **kwargs: object) -> _FakeProcess:
        launched.append(list(args))
        return _FakeProcess()

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    pool = LocalPool(Settings(home=tmp_path))
    record = pool._spawn(
        group="plain", model_path=tmp_path / "model", kv_cache_gib=1.0,
        max_model_len=2048, extra_args=[], index=0,
    )  # fmt: skip
    (args,) = launched
    assert args[args.index("--host") + 1] == "127.0.0.1"
    assert "0.0.0.0" not in args and "::" not in args
    assert record.url.startswith("http://127.0.0.1:")
