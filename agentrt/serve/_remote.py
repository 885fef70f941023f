"""Calling a served graph from another run, with the time that run has left.

``RemoteGraph`` used as a node of a local graph is invoked as any node is
(``ainvoke(input, config)``), so no per-call ``headers=`` reaches it. The clients
made here add the ``agentrt-timeout`` header to every request themselves, from
the deadline in force when the request is sent (:func:`~agentrt.core._deadline.current_deadline`,
which an agentrt run makes ambient in every node): the remote run is then given
what the caller has left, less ``margin_s`` for the answer to travel back, and
returns by then. Outside any deadline no header is sent (the server's profile
deadline applies).

    graph.add_node("remote", remote_graph("math", url="http://127.0.0.1:2024"))

:func:`deadline_headers` is the same header for a call made by hand
(``client.runs.wait(..., headers=deadline_headers())``).
"""

from __future__ import annotations

import math
from typing import Any

import httpx
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

from agentrt.core._deadline import DEADLINE_HEADER, Deadline, current_deadline

__all__ = [
    "REMOTE_MARGIN_S",
    "deadline_headers",
    "remote_graph",
    "with_deadline_header",
]

REMOTE_MARGIN_S = 0.05
"""Seconds kept back from the time left for the remote answer to travel back."""
MIN_REMOTE_S = 1e-3
"""The least a remote run is given, even once the caller's time is up: the server
then refuses it (or cuts it at once) rather than take a zero it would reject."""


def deadline_headers(
    deadline: Deadline | None = None, *, margin_s: float = REMOTE_MARGIN_S
) -> dict[str, str]:
    """``{"agentrt-timeout": ...}`` for the time ``deadline`` (else the one in force)
    leaves, less ``margin_s``; empty when there is no deadline or it never expires."""
    deadline = deadline or current_deadline()
    if deadline is None or math.isinf(deadline.hard_at):
        return {}
    left_s = max(MIN_REMOTE_S, deadline.remaining() - margin_s)
    return {DEADLINE_HEADER: Deadline.after(left_s, clock=deadline.clock).to_header()}


def with_deadline_header(
    client: LangGraphClient | SyncLangGraphClient, *, margin_s: float = REMOTE_MARGIN_S
) -> LangGraphClient | SyncLangGraphClient:
    """``client`` with every request carrying the time left on the deadline in force
    when it is sent (a header it already has is tightened, never loosened)."""
    http = client.http.client

    def add(request: httpx.Request) -> None:
        for name, value in deadline_headers(margin_s=margin_s).items():
            if name not in request.headers or _tighter(value, request.headers[name]):
                request.headers[name] = value

    async def add_async(request: httpx.Request) -> None:
        add(request)

    hooks = dict(http.event_hooks)
    hook: Any = add_async if isinstance(http, httpx.AsyncClient) else add
    hooks["request"] = [*hooks.get("request", []), hook]
    http.event_hooks = hooks
    return client


def remote_graph(
    assistant_id: str,
    *,
    url: str,
    margin_s: float = REMOTE_MARGIN_S,
    headers: dict[str, str] | None = None,
    api_key: str | None = None,
    **options: Any,
) -> RemoteGraph:
    """A ``RemoteGraph`` on a served graph whose every request carries the caller's
    time left (``agentrt-timeout``): use it as a node of a local graph, or on its own
    inside ``deadline_scope``. ``options`` go to ``RemoteGraph`` (``name``, ``config``)."""
    key: dict[str, Any] = {} if api_key is None else {"api_key": api_key}
    client = get_client(url=url, headers=headers, **key)
    sync_client = get_sync_client(url=url, headers=headers, **key)
    with_deadline_header(client, margin_s=margin_s)
    with_deadline_header(sync_client, margin_s=margin_s)
    return RemoteGraph(assistant_id, client=client, sync_client=sync_client, **options)


def _tighter(value: str, existing: str) -> bool:
    """Whether header ``value`` leaves less time than ``existing`` (a malformed
    existing one is replaced)."""
    try:
        return Deadline.from_header(value).hard_at < Deadline.from_header(existing).hard_at
    except ValueError:
        return True
