"""The pool of OpenAI-compatible (vLLM) endpoints: streaming, routing, health, retries,
and the embedded local CPU pool."""

from agentrt.pool.client import EndpointClient
from agentrt.pool.config import endpoints_from_env, endpoints_from_toml, parse_endpoint_list
from agentrt.pool.endpoint import (
    PLAIN_GROUP,
    SPEC_GROUP,
    EndpointSpec,
    EndpointState,
    greedy_only_groups,
)
from agentrt.pool.local import LocalPool, ServerRecord, pool_endpoints
from agentrt.pool.local_model import LOCAL_MODEL_NAME, prepare_model
from agentrt.pool.pool import Backend, EndpointPool, RetrySettings
from agentrt.pool.protocol import BranchFinished, ChatRequest, StreamEvent, TokenDelta, Usage
from agentrt.pool.stream import BranchRecord, ChatStream

__all__ = [
    "LOCAL_MODEL_NAME",
    "PLAIN_GROUP",
    "SPEC_GROUP",
    "Backend",
    "BranchFinished",
    "BranchRecord",
    "ChatRequest",
    "ChatStream",
    "EndpointClient",
    "EndpointPool",
    "EndpointSpec",
    "EndpointState",
    "LocalPool",
    "RetrySettings",
    "ServerRecord",
    "StreamEvent",
    "TokenDelta",
    "Usage",
    "endpoints_from_env",
    "endpoints_from_toml",
    "greedy_only_groups",
    "parse_endpoint_list",
    "pool_endpoints",
    "prepare_model",
]
