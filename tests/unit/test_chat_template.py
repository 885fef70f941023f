"""The chat template the local pool's servers run with (agentrt/pool/templates):
rendered with jinja2 as vLLM renders it (``tojson`` filter, ``add_generation_prompt``)."""

from __future__ import annotations

import json
from typing import Any

import jinja2

from agentrt.pool._local import TOOL_CHAT_TEMPLATE

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
ADD = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}


def render(messages: list[dict[str, Any]], **variables: Any) -> str:
    env = jinja2.Environment()
    env.filters["tojson"] = json.dumps
    template = env.from_string(TOOL_CHAT_TEMPLATE.read_text(encoding="utf-8"))
    return template.render(messages=messages, add_generation_prompt=True, **variables)


def test_a_system_message_is_kept_with_or_without_tools() -> None:
    plain = render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert plain == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_tools = render([{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "hi"}], tools=[ADD])  # fmt: skip
    assert with_tools.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert '"name": "add"' in with_tools and with_tools.count("<|im_start|>system") == 1


def test_without_a_system_message_the_model_default_is_used() -> None:
    assert render([{"role": "user", "content": "hi"}]).startswith(
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nhi"
    )


def test_tool_calls_and_results_render_the_hermes_way() -> None:
    out = render([
        {"role": "user", "content": "1 + 2?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
        {"role": "tool", "tool_call_id": "c2", "content": "4"},
    ], tools=[ADD])  # fmt: skip
    call = '{"name": "add", "arguments": {"a": 1, "b": 2}}'
    assert f"<|im_start|>assistant\n<tool_call>\n{call}" in out
    assert out.count("<|im_start|>user\n<tool_response>") == 1  # consecutive results: one turn
    assert "<tool_response>\n3\n</tool_response>\n<tool_response>\n4\n</tool_response>" in out


def test_content_parts_are_joined() -> None:
    out = render([{"role": "user", "content": [{"type": "text", "text": "a"},
                                                {"type": "text", "text": "b"}]}])  # fmt: skip
    assert "<|im_start|>user\nab<|im_end|>" in out
