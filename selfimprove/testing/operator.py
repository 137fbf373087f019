"""``FakeToolChat``: a scripted tool-calling chat model for the console's operator agent.

    from selfimprove.testing.operator import FakeToolChat
    model = FakeToolChat(rules=[
        ("status", "get_status", {}),
        (r"failures in round (\\d+)", "show_failures", {"round": "$1"}),
    ])
    operator = Operator(Run("runs/x"), model)
    operator.reply("show failures in round 1")   # calls show_failures(round=1), then summarizes
    model.bound_tools                            # the tool names the agent offered
    model.tool_calls                             # every tool call it made

It is a real langchain-core ``BaseChatModel``, so it runs through LangGraph the
way a provider's model does. On a human message the first rule whose pattern
matches (``re.search``, case-insensitive) gives a tool call; ``$1``, ``$2`` in a
string argument take the match's groups (an argument that is exactly ``"$1"``
becomes a number or boolean when the group is one). After a tool result it
answers ``"Here is what I found:"`` and the result (truncated); when no rule
matches it answers with what it can help with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

Rule = tuple[str, str, dict[str, Any]]
"""``(pattern, tool name, arguments)``: on a matching human message, call that tool."""

_GROUP = re.compile(r"\$(\d+)")


class FakeToolChat(BaseChatModel):
    """A scripted chat model that emits tool calls; see the module docstring."""

    rules: list[Rule] = Field(default_factory=list)
    max_result_chars: int = 2000
    bound_tools: list[str] = Field(default_factory=list)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "fake-tool-chat"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, AIMessage]:
        """Record the offered tools' names and return the model itself."""
        self.bound_tools = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.prompts.append(list(messages))
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage):
            text = str(last.content)
            if len(text) > self.max_result_chars:
                text = text[: self.max_result_chars] + "…"
            message = AIMessage(content="Here is what I found:\n" + text)
        elif isinstance(last, HumanMessage):
            message = self._answer(str(last.content))
        else:
            message = AIMessage(content="I have nothing to add.")
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _answer(self, text: str) -> AIMessage:
        for pattern, tool, args in self.rules:
            match = re.search(pattern, text, re.IGNORECASE)
            if match:
                call = {
                    "name": tool,
                    "args": {k: _fill(v, match) for k, v in args.items()},
                    "id": f"call_{len(self.tool_calls) + 1}",
                    "type": "tool_call",
                }
                self.tool_calls.append(call)
                return AIMessage(content="", tool_calls=[call])
        tools = ", ".join(self.bound_tools) or "nothing (no tools were offered)"
        return AIMessage(content=f"I can help with: {tools}.")


def _fill(value: Any, match: re.Match[str]) -> Any:
    if not isinstance(value, str):
        return value
    whole = _GROUP.fullmatch(value)
    if whole:
        group = match.group(int(whole.group(1))) or ""
        try:
            parsed = json.loads(group)
        except ValueError:
            return group
        return parsed if isinstance(parsed, int | float | bool) else group
    return _GROUP.sub(lambda m: match.group(int(m.group(1))) or "", value)
