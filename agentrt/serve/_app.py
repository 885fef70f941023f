"""The Starlette app: the Agent Protocol routes ``langgraph_sdk`` and ``RemoteGraph`` use.

:func:`create_app` builds one worker's app. Its lifespan opens the worker's one
:class:`~agentrt.Runtime` (unless it was given one already open) and the
checkpointer, and gives every graph a copy that keeps thread state there; every
request shares them. docs/serving.md describes the endpoints, the deadline of a
run, the outcome a client gets back, admission and threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentrt.core._deadline import DEADLINE_HEADER
from agentrt.core._errors import ConfigurationError
from agentrt.core._log import log_dropped
from agentrt.core._redact import truncate_redacted
from agentrt.core._settings import Settings
from agentrt.langgraph._runtime import Runtime
from agentrt.serve._admission import DEFAULT_MAX_IN_FLIGHT, Admission
from agentrt.serve._checkpoints import open_checkpointer
from agentrt.serve._deadlines import MAX_DEADLINE_S
from agentrt.serve._encoding import dumps, jsonable, sse_event
from agentrt.serve._graphs import GraphCatalog
from agentrt.serve._metrics import SharedMetrics, metrics_response, start_telemetry
from agentrt.serve._protocol import (
    MAX_BODY_BYTES,
    AssistantSearch,
    RequestRefused,
    RunCreate,
    ThreadCreate,
    ThreadSearch,
    parse_body,
)
from agentrt.serve._runs import GUARD_S, RunService, StartedRun, outcome_headers
from agentrt.serve._streaming import EventStream, wait_disconnect
from agentrt.serve._threads import RunRecord, RunRegistry, interrupts_of, now_iso, state_view
from agentrt.serve._ui import ui_routes
from agentrt.tracing import RecentRuns

__all__ = ["OUTCOME_EVENT", "create_app"]

OUTCOME_EVENT = "agentrt/outcome"
"""The last event of a run's stream: agentrt's outcome (degraded, reason, report)."""

RuntimeSource = Runtime | Callable[[], Runtime] | None


class JSONBody(Response):
    """A JSON response rendered by :func:`~agentrt.serve._encoding.dumps` (graph state
    holds messages, tuples, non-finite floats)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def create_app(
    graphs: Mapping[str, Any] | Sequence[Any],
    *,
    runtime: RuntimeSource = None,
    checkpointer_url: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    max_deadline_s: float = MAX_DEADLINE_S,
    max_body_bytes: int = MAX_BODY_BYTES,
    settings: Settings | None = None,
    telemetry: bool = False,
    shared_metrics_dir: Path | None = None,
) -> Starlette:
    """One worker's app serving ``graphs`` (assistant id -> compiled graph,
    :class:`~agentrt.langgraph.LoadedGraph` or :class:`ServedGraph`).

    ``runtime``: an already opened :class:`~agentrt.Runtime` (the caller closes it),
    or a factory whose runtime the app opens at start-up and closes at shutdown
    (default: ``Runtime()``, the configured or the local pool).
    ``checkpointer_url``: where thread state lives (``None``/``"memory"``: in this
    process; ``postgresql://...``). ``max_in_flight``: runs at once, past which a
    run is refused with a 503. ``app.state.admission`` counts admitted and refused
    runs. ``telemetry``: configure agentrt's tracer and meter providers from the
    environment at start-up (``GET /metrics`` is empty until something does).
    ``shared_metrics_dir``: a directory this app's worker shares with the other
    workers on its port; each publishes its metrics there and ``GET /metrics``
    answers them all, labelled by worker (``agentrt serve --workers N`` sets it).
    ``app.state.recent_runs`` keeps the latest runs' spans for the runs page
    (``GET /ui``), from the runtime's tracer provider, else the one in use.
    """
    for name, value in (("max_deadline_s", max_deadline_s), ("max_body_bytes", max_body_bytes)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e18:
            raise ConfigurationError(f"create_app: {name} must be a positive number, got {value!r}")
    catalog = GraphCatalog.of(graphs, settings)
    admission = Admission(max_in_flight=max_in_flight)
    registry = RunRegistry()
    recent = RecentRuns()  # the runs page's waterfalls (docs/serving.md, "The runs page")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if telemetry:
            start_telemetry()
        async with contextlib.AsyncExitStack() as stack:
            if isinstance(runtime, Runtime):
                opened = runtime
            else:
                opened = await stack.enter_async_context((runtime or Runtime)())
            saver = await stack.enter_async_context(open_checkpointer(checkpointer_url))
            catalog.attach(saver)
            recent.attach(opened.tracer_provider)
            service = RunService(
                opened, catalog, registry, admission, saver, max_deadline_s=max_deadline_s,
                recent=recent,
            )  # fmt: skip
            app.state.service = service
            publishing = None
            if shared_metrics_dir is not None:  # one of several workers on one port
                app.state.shared_metrics = shared = SharedMetrics(shared_metrics_dir)
                publishing = asyncio.create_task(shared.publish_forever())
            try:
                yield
            finally:
                if publishing is not None:
                    publishing.cancel()
                    await asyncio.gather(publishing, return_exceptions=True)
                await service.shutdown()
                recent.shutdown()

    routes = _routes(catalog, registry, admission, max_body_bytes, max_deadline_s)
    routes.append(Route("/metrics", metrics_response, methods=["GET"]))
    routes.extend(ui_routes(registry, recent))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            RequestRefused: _refused,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.admission = admission
    app.state.catalog = catalog
    app.state.registry = registry
    app.state.recent_runs = recent
    return app


# -- errors -----------------------------------------------------------------------


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRefused)
    return JSONBody(exc.body(), status_code=exc.status_code, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    if exc.status_code == 404:
        detail = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return JSONBody({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log_dropped(f"{request.method} {request.url.path} failed", exc)
    text = truncate_redacted(f"{type(exc).__name__}: {exc}", 300)
    return JSONBody({"detail": f"internal error: {text}"}, status_code=500)


# -- reading requests ---------------------------------------------------------------


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRefused(
            413, f"the request body is {declared} bytes; this server takes at most {limit}",
            field="content-length", value=int(declared),
        )  # fmt: skip
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRefused(
                413, f"the request body is over {limit} bytes, this server's limit",
                field="content-length", value=size,
            )  # fmt: skip
        chunks.append(chunk)
    return b"".join(chunks)


def _service(request: Request) -> RunService:
    service: RunService = request.app.state.service
    return service


# -- routes -----------------------------------------------------------------------


def _routes(
    catalog: GraphCatalog,
    registry: RunRegistry,
    admission: Admission,
    max_body_bytes: int,
    max_deadline_s: float,
) -> list[Route]:
    version = _version()
    started_at = now_iso()

    def assistant_view(name: str) -> dict[str, Any]:
        served = catalog.get(name)
        profile = catalog.profile(name)
        return {
            "assistant_id": served.name,
            "graph_id": served.name,
            "name": served.name,
            "description": served.description,
            "config": {},
            "context": {},
            "metadata": {
                "created_by": "system",
                "graph_path": served.path,
                "deadline_s": profile.spec.deadline_s,
                "minimum_s": round(catalog.minimum_s(served.name), 6),
            },
            "version": 1,
            "created_at": started_at,
            "updated_at": started_at,
        }

    async def ok(request: Request) -> Response:
        return JSONBody({"ok": True})

    async def info(request: Request) -> Response:
        return JSONBody({
            "version": version,
            "flags": {"assistants": True, "crons": False, "langsmith": False},
            "agentrt": {
                "deadline_header": DEADLINE_HEADER,
                "max_deadline_s": max_deadline_s,
                "outcome_event": OUTCOME_EVENT,
                "admission": admission.snapshot(),
                "graphs": catalog.names(),
                "worker": {"host": socket.gethostname(), "pid": os.getpid()},
            },
        })  # fmt: skip

    async def assistants_search(request: Request) -> Response:
        query = parse_body(AssistantSearch, await _body(request, max_body_bytes), allow_empty=True)
        views = [assistant_view(name) for name in catalog.names()]
        views = [
            v for v in views
            if (query.graph_id is None or v["graph_id"] == query.graph_id)
            and (query.name is None or v["name"] == query.name)
            and _matches(v["metadata"], query.metadata)
        ]  # fmt: skip
        return JSONBody(views[query.offset : query.offset + query.limit])

    async def assistant(request: Request) -> Response:
        return JSONBody(assistant_view(catalog.get(request.path_params["assistant_id"]).name))

    async def assistant_graph(request: Request) -> Response:
        served = catalog.get(request.path_params["assistant_id"])
        return JSONBody(served.graph.get_graph().to_json())

    async def threads_create(request: Request) -> Response:
        body = parse_body(ThreadCreate, await _body(request, max_body_bytes), allow_empty=True)
        if body.thread_id is not None:
            existing = await _service(request).find_thread(body.thread_id)
            if existing is not None:
                if body.if_exists == "do_nothing":
                    return JSONBody(existing.view())
                raise RequestRefused(
                    409, f"thread {body.thread_id!r} already exists", field="thread_id",
                    value=body.thread_id,
                )  # fmt: skip
        metadata = body.metadata or {}
        graph = metadata.get("graph_id")
        if graph is not None:
            catalog.get(str(graph))  # a thread bound to an unknown graph is a 404 now
        return JSONBody(registry.new_thread(body.thread_id, metadata).view())

    async def threads_search(request: Request) -> Response:
        query = parse_body(ThreadSearch, await _body(request, max_body_bytes), allow_empty=True)
        found = [
            t for t in reversed(registry.threads.values())
            if (query.ids is None or t.thread_id in query.ids)
            and (query.status is None or t.status == query.status)
            and _matches(t.metadata, query.metadata)
        ]  # fmt: skip
        return JSONBody([t.view() for t in found[query.offset : query.offset + query.limit]])

    async def thread_get(request: Request) -> Response:
        service = _service(request)
        thread = await service.thread(request.path_params["thread_id"])
        snapshot = await service.state(thread)
        if snapshot is None:
            return JSONBody(thread.view())
        return JSONBody(thread.view(jsonable(snapshot.values), interrupts_of(snapshot)))

    async def thread_delete(request: Request) -> Response:
        service = _service(request)
        thread = await service.thread(request.path_params["thread_id"])
        if thread.running is not None:
            raise RequestRefused(409, f"thread {thread.thread_id!r} is busy with run "
                                 f"{thread.running!r}; cancel it first")  # fmt: skip
        await service.saver.adelete_thread(thread.thread_id)
        registry.forget_thread(thread.thread_id)
        return Response(status_code=204)

    async def thread_state(request: Request) -> Response:
        service = _service(request)
        thread = await service.thread(request.path_params["thread_id"])
        return JSONBody(state_view(thread, await service.state(thread)))

    async def thread_state_at(request: Request) -> Response:
        service = _service(request)
        thread = await service.thread(request.path_params["thread_id"])
        raw = await _body(request, max_body_bytes)
        checkpoint = _checkpoint_id(raw)
        return JSONBody(state_view(thread, await service.state(thread, checkpoint)))

    async def thread_history(request: Request) -> Response:
        service = _service(request)
        thread = await service.thread(request.path_params["thread_id"])
        limit, before = _history_query(await _body(request, max_body_bytes))
        snapshots = await service.history(thread, limit=limit, before=before)
        return JSONBody([state_view(thread, snapshot) for snapshot in snapshots])

    async def run_background(request: Request) -> Response:
        started = await _start(request, stream=False)
        return JSONBody(started.record.view(), headers=_location(started.record))

    async def run_wait(request: Request) -> Response:
        started = await _start(request, stream=False)
        service = _service(request)
        disconnected = asyncio.ensure_future(wait_disconnect(request.receive))
        try:
            await service.wait(started, disconnected)
        finally:
            disconnected.cancel()
        record = started.record
        if record.result is None and record.status == "error":
            detail = (record.outcome or {}).get("reason") or "the run could not start"
            return JSONBody({"detail": f"run {record.run_id} failed to start: {detail}"},
                            status_code=500, headers=_location(record))  # fmt: skip
        return JSONBody(record.values(), headers={**_location(record), **outcome_headers(record)})

    async def run_stream(request: Request) -> Response:
        started = await _start(request, stream=True)
        service = _service(request)
        record = started.record

        def on_abort() -> None:
            if started.on_disconnect == "cancel" and record.task is not None:
                record.cancel_reason = "the client disconnected"
                record.task.cancel()

        return EventStream(
            _events(service, started), on_abort=on_abort,
            headers={**_location(record), "Cache-Control": "no-store"},
        )  # fmt: skip

    async def _start(request: Request, *, stream: bool) -> StartedRun:
        received_at = _service(request).clock.now()
        body = parse_body(RunCreate, await _body(request, max_body_bytes))
        return await _service(request).start(
            body,
            thread_id=request.path_params.get("thread_id"),
            header=request.headers.get(DEADLINE_HEADER),
            received_at=received_at,
            stream=stream,
        )

    async def runs_list(request: Request) -> Response:
        thread = await _service(request).thread(request.path_params["thread_id"])
        return JSONBody([r.view() for r in registry.runs_of(thread.thread_id)])

    async def run_get(request: Request) -> Response:
        record = registry.run(request.path_params["thread_id"], request.path_params["run_id"])
        return JSONBody(record.view())

    async def run_join(request: Request) -> Response:
        record = registry.run(request.path_params["thread_id"], request.path_params["run_id"])
        await _service(request).join(record)
        return JSONBody(record.values(), headers=outcome_headers(record))

    async def run_cancel(request: Request) -> Response:
        record = registry.run(request.path_params["thread_id"], request.path_params["run_id"])
        action = request.query_params.get("action", "interrupt")
        if action != "interrupt":
            raise RequestRefused(
                422, f"action = {action!r}: not supported by agentrt serve (only 'interrupt')",
                field="action", value=action,
            )  # fmt: skip
        if record.done:
            raise RequestRefused(
                409, f"run {record.run_id!r} has already ended ({record.status})",
                field="run_id", value=record.run_id,
            )  # fmt: skip
        wait = request.query_params.get("wait", "0") in ("1", "true")
        await _service(request).cancel(record, "cancelled by request", wait=wait)
        return Response(status_code=204 if wait else 202)

    return [
        Route("/ok", ok, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/assistants/search", assistants_search, methods=["POST"]),
        Route("/assistants/{assistant_id}", assistant, methods=["GET"]),
        Route("/assistants/{assistant_id}/graph", assistant_graph, methods=["GET"]),
        Route("/threads", threads_create, methods=["POST"]),
        Route("/threads/search", threads_search, methods=["POST"]),
        Route("/threads/{thread_id}", thread_get, methods=["GET"]),
        Route("/threads/{thread_id}", thread_delete, methods=["DELETE"]),
        Route("/threads/{thread_id}/state", thread_state, methods=["GET"]),
        Route("/threads/{thread_id}/state/checkpoint", thread_state_at, methods=["POST"]),
        Route("/threads/{thread_id}/history", thread_history, methods=["POST"]),
        Route("/runs", run_background, methods=["POST"]),
        Route("/runs/wait", run_wait, methods=["POST"]),
        Route("/runs/stream", run_stream, methods=["POST"]),
        Route("/threads/{thread_id}/runs", run_background, methods=["POST"]),
        Route("/threads/{thread_id}/runs", runs_list, methods=["GET"]),
        Route("/threads/{thread_id}/runs/wait", run_wait, methods=["POST"]),
        Route("/threads/{thread_id}/runs/stream", run_stream, methods=["POST"]),
        Route("/threads/{thread_id}/runs/{run_id}", run_get, methods=["GET"]),
        Route("/threads/{thread_id}/runs/{run_id}/join", run_join, methods=["GET"]),
        Route("/threads/{thread_id}/runs/{run_id}/cancel", run_cancel, methods=["POST"]),
    ]


async def _events(service: RunService, started: StartedRun) -> AsyncIterator[bytes]:
    """A streamed run's SSE events: ``metadata`` first, each chunk, then agentrt's
    outcome (or ``error`` for a run that could not start)."""
    record = started.record
    assert started.events is not None
    yield sse_event("metadata", {
        "run_id": record.run_id, "thread_id": record.thread_id, "attempt": 1,
        "deadline_s": record.deadline.seconds, "deadline_source": record.deadline.source,
    })  # fmt: skip
    try:
        async for event in started.events.events(record.ends_by + GUARD_S, service.clock):
            yield event
    except TimeoutError:
        await service.cancel(record, f"the server's guard ({GUARD_S:g}s past the deadline)")
    task = record.task
    if task is not None and not task.done():
        await service.join(record)
    if record.result is None and record.status == "error":
        reason = (record.outcome or {}).get("reason") or "the run could not start"
        yield sse_event("error", {"error": "RunFailed", "message": reason})
        return
    yield sse_event(OUTCOME_EVENT, {"run_id": record.run_id, **(record.outcome or {})})


def _location(record: RunRecord) -> dict[str, str]:
    """``Content-Location``: where the run is (the sdk's ``on_run_created`` reads it)."""
    return {"Content-Location": f"/threads/{record.thread_id}/runs/{record.run_id}"}


def _matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any] | None) -> bool:
    return not wanted or all(metadata.get(k) == v for k, v in wanted.items())


def _checkpoint_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise RequestRefused(400, "the request body is not valid JSON") from None
    checkpoint = data.get("checkpoint") if isinstance(data, dict) else None
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, dict):
        raise RequestRefused(422, f"checkpoint = {checkpoint!r}: must be an object",
                             field="checkpoint", value=checkpoint)  # fmt: skip
    found = checkpoint.get("checkpoint_id")
    return found if isinstance(found, str) and found else None


MAX_HISTORY = 1000
"""The most checkpoints one history request returns."""


def _history_query(raw: bytes) -> tuple[int, str | None]:
    """``limit`` (1..MAX_HISTORY, default 10) and ``before``'s checkpoint id of a
    ``POST /threads/{id}/history`` body (what ``threads.get_history`` sends)."""
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise RequestRefused(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise RequestRefused(422, "the request body must be a JSON object")
    limit = data.get("limit", 10)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_HISTORY:
        raise RequestRefused(422, f"limit = {limit!r}: must be an integer in 1..{MAX_HISTORY}",
                             field="limit", value=limit)  # fmt: skip
    before = data.get("before")
    if before is None:
        return limit, None
    if isinstance(before, dict):
        before = before.get("configurable", before).get("checkpoint_id")
    if not isinstance(before, str) or not before:
        raise RequestRefused(422, f"before = {data.get('before')!r}: must be a checkpoint "
                             "(an object with checkpoint_id) or its id",
                             field="before", value=data.get("before"))  # fmt: skip
    return limit, before


def _version() -> str:
    try:
        return importlib.metadata.version("agentrt")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
