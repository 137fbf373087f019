"""``LiteLLMChat``: any litellm model as a langchain-core chat model with tool calling.

The console's operator agent is a LangGraph graph, which wants a ``BaseChatModel``
that can ``bind_tools``; this is one over ``litellm.completion``, so the operator
can be a hosted model or a local OpenAI-compatible server:

    from selfimprove.console.llm import LiteLLMChat
    chat = LiteLLMChat(model="openai/gpt-4o-mini")                  # key from $OPENAI_API_KEY
    local = LiteLLMChat(model="openai/qwen", api_base="http://127.0.0.1:8000/v1")
    chat = LiteLLMChat.from_config(config.console.operator)         # api_key_env, timeouts
    reply = chat.bind_tools([get_status]).invoke("how is the run doing?")
    reply.tool_calls                                                # [{"name": "get_status", ...}]
    fake = LiteLLMChat(model="openai/x", mock_response="hi")        # no network (tests)

Requests go through ``selfimprove.models.remote.LiteLLMModel``: the same retries
with backoff for transient errors, and the same ``ModelError`` naming the model
and the api_base when a request fails for good.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr, SecretStr

from selfimprove.config import ModelConfig
from selfimprove.models.base import ModelError
from selfimprove.models.remote import LiteLLMModel, api_key_from


class LiteLLMChat(BaseChatModel):
    """A tool-calling chat model over ``litellm.completion``; see the module docstring.

    ``mock_response`` is passed to litellm so no request leaves the process: a reply
    text, a litellm error name (``"litellm.RateLimitError"``), an OpenAI-format
    response dict (to mock tool calls), or a callable from the request's messages
    to one of those.
    """

    model: str
    api_base: str | None = None
    api_key: SecretStr | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    backoff_s: float = Field(default=1.0, ge=0)
    mock_response: Any = None
    _client: LiteLLMModel = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._client = LiteLLMModel(
            self.model,
            api_base=self.api_base,
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            max_concurrency=1,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            mock_response=self.mock_response,
        )

    @classmethod
    def from_config(cls, config: ModelConfig) -> LiteLLMChat:
        """Build from ``console.operator`` (any ``ModelConfig`` with a litellm model).

        Raises:
            ModelError: no model is set, the backend is not litellm, or ``api_key_env``
                names a variable that is unset or empty.
        """
        if not config.model:
            raise ModelError("no operator model is set; set console.operator.model")
        if config.backend != "litellm":
            raise ModelError(
                f"the operator needs a tool-calling chat model through litellm, but "
                f"console.operator.backend is {config.backend!r}; set it to 'litellm'"
            )
        api_key = api_key_from(config)
        return cls(
            model=config.model,
            api_base=config.api_base,
            api_key=SecretStr(api_key) if api_key else None,
            temperature=config.temperature,
            max_tokens=config.max_new_tokens,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
        )

    @property
    def _llm_type(self) -> str:
        return "selfimprove-litellm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "api_base": self.api_base, "temperature": self.temperature}

    @property
    def usage(self) -> Any:
        """Tokens and cost of every request so far (``selfimprove.models.base.Usage``)."""
        return self._client.usage

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, AIMessage]:
        """This model with ``tools`` offered on every request.

        ``tool_choice``: ``"auto"``, ``"none"``, ``"required"`` (``"any"`` means the
        same), or a tool's name to force that tool.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            if tool_choice == "any":
                tool_choice = "required"
            if tool_choice not in ("auto", "none", "required"):
                kwargs["tool_choice"] = {"type": "function", "function": {"name": tool_choice}}
            else:
                kwargs["tool_choice"] = tool_choice
        return super().bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if stop:
            params["stop"] = stop
        params.update(kwargs)
        if params.get("tools"):
            # litellm 1.106 checks `tools` for MCP servers by importing the optional
            # `mcp` package; ours are plain functions, so skip that check.
            params["_skip_mcp_handler"] = True
        response = self._client._request(to_openai_messages(messages), params)
        if not response.choices:
            raise ModelError(
                f"model {self.model!r} returned no choices; "
                "check that the server implements chat completions"
            )
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        message = to_ai_message(choice.message)
        if usage is not None:
            message.usage_metadata = {
                "input_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
                "output_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
                "total_tokens": int(getattr(usage, "total_tokens", 0) or 0),
            }
        info = {"finish_reason": getattr(choice, "finish_reason", None)}
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info=info)],
            llm_output={"model": self.model},
        )


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """langchain messages as OpenAI chat messages (tool calls and tool results included)."""
    converted = convert_to_openai_messages(list(messages), text_format="string")
    return converted if isinstance(converted, list) else [converted]


def to_ai_message(message: Any) -> AIMessage:
    """An OpenAI-format assistant message (litellm's ``Message``) as an ``AIMessage``.

    Tool calls whose arguments are not valid JSON become ``invalid_tool_calls``
    (with the parse error) instead of raising.
    """
    tool_calls, invalid = [], []
    for raw in getattr(message, "tool_calls", None) or []:
        call = raw.model_dump() if hasattr(raw, "model_dump") else dict(raw)
        call.setdefault("function", {})
        if call["function"].get("arguments") in (None, ""):
            call["function"]["arguments"] = "{}"  # some servers send nothing for no arguments
        try:
            parsed = parse_tool_call(call, return_id=True)
        except Exception as exc:  # OutputParserException: arguments are not JSON
            invalid.append(make_invalid_tool_call(call, str(exc)[:300]))
        else:
            if parsed is not None:
                tool_calls.append(parsed)
    return AIMessage(
        content=getattr(message, "content", None) or "",
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
    )
