"""The shape a call's replies must take: tools offered to the model, the tool
choice, a response format (JSON schema or JSON mode). The executor passes it to
every request of the call unchanged; deciding it is the chat model's job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OutputFormat"]


@dataclass(frozen=True)
class OutputFormat:
    """``tools`` are OpenAI tool definitions, ``tool_choice`` is sent with them,
    ``response_format`` is OpenAI's (``{"type": "json_schema", ...}`` or
    ``{"type": "json_object"}``)."""

    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    @property
    def structured(self) -> bool:
        """Replies are JSON (tool calls or a response format): a reply cut short
        is not an answer, so a call's token cap is never cut below its plan's."""
        return bool(self.tools) or self.response_format is not None

    def request_fields(self) -> dict[str, Any]:
        """The :class:`~agentrt.pool.ChatRequest` fields this format sets."""
        return {
            "tools": self.tools,
            "tool_choice": self.tool_choice if self.tools else None,
            "response_format": self.response_format,
        }

    def extra(self) -> dict[str, Any]:
        """Payload fields with no ChatRequest field of their own."""
        if self.tools and self.parallel_tool_calls is not None:
            return {"parallel_tool_calls": self.parallel_tool_calls}
        return {}
