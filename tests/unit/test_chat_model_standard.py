"""LangChain's standard chat-model unit tests for TTSChatModel (no server needed).

Tool calling, tool choice, structured output (each method) and JSON mode are
on. Skipped: image/audio/video/PDF inputs (the served model takes text only),
per-call model override (a TTSChatModel serves what its pool serves), and
serialisation (it holds a runtime and a pool).
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
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False
