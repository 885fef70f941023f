"""``agentrt serve``: an HTTP server speaking the part of the LangGraph Agent Protocol
the official clients (``langgraph_sdk``, ``RemoteGraph``) use, every run under its
own deadline.

    app = create_app({"math": load_graph("graphs/math.py:graph")})   # a Starlette app
    serve(["graphs/math.py:graph"], port=2024)                        # uvicorn, blocking

A run's deadline is the tightest of the ``agentrt-timeout`` header,
``context["deadline_s"]`` and ``config["configurable"]["deadline_s"]`` (else the
graph's profile's); the response never outlives it. :func:`remote_graph` calls a
served graph from another run with the time that run has left. See docs/serving.md.
"""

from agentrt.serve._admission import Admission
from agentrt.serve._app import OUTCOME_EVENT, create_app
from agentrt.serve._checkpoints import open_checkpointer
from agentrt.serve._deadlines import MAX_DEADLINE_S, RunDeadline, run_deadline
from agentrt.serve._graphs import ServedGraph
from agentrt.serve._protocol import RequestRefused
from agentrt.serve._remote import deadline_headers, remote_graph, with_deadline_header
from agentrt.serve._server import ServeConfig, serve

__all__ = [
    "MAX_DEADLINE_S",
    "OUTCOME_EVENT",
    "Admission",
    "RequestRefused",
    "RunDeadline",
    "ServeConfig",
    "ServedGraph",
    "create_app",
    "deadline_headers",
    "open_checkpointer",
    "remote_graph",
    "run_deadline",
    "serve",
    "with_deadline_header",
]
