"""The pool of OpenAI-compatible (vLLM) endpoints: streaming, routing, health, retries,
the embedded local CPU pool, and the pool's fingerprint (what a calibration is valid for)."""

from agentrt.pool._client import EndpointClient
from agentrt.pool._config import endpoints_from_env, endpoints_from_toml, parse_endpoint_list
from agentrt.pool._endpoint import (
    PLAIN_GROUP,
    SPEC_GROUP,
    EndpointSpec,
    EndpointState,
    greedy_only_groups,
)
from agentrt.pool._events import OnEndpoint, RequestSent
from agentrt.pool._fingerprint import (
    HostFacts,
    PoolFingerprint,
    ServerFingerprint,
    fingerprint_pool,
    host_facts,
    pool_fingerprint,
)
from agentrt.pool._hardware import DtypeChoice, choose_dtype, cpu_flags, cpu_model
from agentrt.pool._local import LocalPool, ServerRecord, pool_endpoints
from agentrt.pool._local_model import LOCAL_MODEL_NAME, prepare_model
from agentrt.pool._pool import Backend, EndpointPool
from agentrt.pool._protocol import BranchFinished, ChatRequest, StreamEvent, TokenDelta, Usage
from agentrt.pool._retry import DEFAULT_RETRY_BURST, DEFAULT_RETRY_RATIO, RetrySettings
from agentrt.pool._stream import BranchRecord, ChatStream

__all__ = [
    "DEFAULT_RETRY_BURST",
    "DEFAULT_RETRY_RATIO",
    "LOCAL_MODEL_NAME",
    "PLAIN_GROUP",
    "SPEC_GROUP",
    "Backend",
    "BranchFinished",
    "BranchRecord",
    "ChatRequest",
    "ChatStream",
    "DtypeChoice",
    "EndpointClient",
    "EndpointPool",
    "EndpointSpec",
    "EndpointState",
    "HostFacts",
    "LocalPool",
    "OnEndpoint",
    "PoolFingerprint",
    "RequestSent",
    "RetrySettings",
    "ServerFingerprint",
    "ServerRecord",
    "StreamEvent",
    "TokenDelta",
    "Usage",
    "choose_dtype",
    "cpu_flags",
    "cpu_model",
    "endpoints_from_env",
    "endpoints_from_toml",
    "fingerprint_pool",
    "greedy_only_groups",
    "host_facts",
    "parse_endpoint_list",
    "pool_endpoints",
    "pool_fingerprint",
    "prepare_model",
]
