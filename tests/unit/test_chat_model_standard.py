"""LangChain's standard chat-model unit tests for TTSChatModel (no server needed).

Skipped capabilities, each because the served model (SmolLM2-135M on vLLM
without a tool parser) cannot do it: tool calling, tool choice, structured
output, JSON mode, image/audio/video/PDF inputs, per-call model override.
"""

from __future__ import annotations

from langchain_tests.unit_tests import ChatModelUnitTests

from agentrt.langgraph import TTSChatModel
from agentrt.pool import EndpointSpec


class TestTTSChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[TTSChatModel]:
        return TTSChatModel

    @property
    def chat_model_params(self) -> dict[str, object]:
        return {"endpoints": [EndpointSpec(url="http://127.0.0.1:9")]}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False
