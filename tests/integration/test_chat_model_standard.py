"""LangChain's standard chat-model integration tests, against the real local pool.

Skipped capabilities, each because the served model (SmolLM2-135M on vLLM
without a tool parser) cannot do it: tool calling, tool choice, structured
output, JSON mode, image/audio/video/PDF inputs, per-call model override.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from agentrt.langgraph import TTSChatModel
from agentrt.pool import EndpointSpec


@pytest.fixture(autouse=True)
def _local_endpoints(
    plain_specs: list[EndpointSpec], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("AGENTRT_ENDPOINTS", ",".join(s.url for s in plain_specs))
    key = plain_specs[0].api_key  # the local pool's servers want its key
    if key is not None:
        monkeypatch.setenv("AGENTRT_API_KEY", key.get_secret_value())
    yield


class TestTTSChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[TTSChatModel]:
        return TTSChatModel

    @property
    def chat_model_params(self) -> dict[str, object]:
        return {}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False
