"""LangChain's standard chat-model integration tests, against the real local pool.

Tool calling, tool choice, structured output (each method) and JSON mode run
here, through ``AGENTRT_ENDPOINTS`` (so ``tool_calling = "constrained"``: the
tools in the prompt, each branch held by a JSON schema); the native path
(vLLM's hermes parser) is tests/integration/test_tools.py's. Skipped: image,
audio, video and PDF inputs (the served model takes text only), per-call model
override (a TTSChatModel serves what its pool serves), VCR (no cassettes: the
server is real).

Expected to fail, for the model's skill rather than the runtime's (they pass
when the model does what they ask; both are marked non-strict): the agent loop
(``tool_choice`` left to the model: SmolLM2-135M answers the weather question
in prose instead of calling ``get_weather``) and JSON mode (``json_object``
admits any JSON, and the model writes an object that is not the joke schema the
prompt describes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.language_models import BaseChatModel
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

    @pytest.mark.xfail(reason="SmolLM2-135M does not choose to call a tool", strict=False)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(reason="SmolLM2-135M's JSON ignores the schema in the prompt", strict=False)
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)

    @pytest.mark.xfail(
        reason="SmolLM2-135M may call the tool with an empty string argument (seen in bf16)",
        strict=False,
    )
    def test_bind_runnables_as_tools(self, model: BaseChatModel) -> None:
        super().test_bind_runnables_as_tools(model)
