"""``LiteLLMChat``: litellm's mock responses, and a local OpenAI-compatible server that
sees the tools and the tool results, driving the operator agent end to end."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from selfimprove.config import OperatorConfig
from selfimprove.console.llm import LiteLLMChat, to_ai_message, to_openai_messages
from selfimprove.console.operator import Operator
from selfimprove.models.base import ModelError
from selfimprove.runs import Run
from selfimprove.testing.runs import start_scripted_run


@tool
def get_status() -> str:
    """Where the run stands."""
    return "running"


@tool
def show_failures(round: int, limit: int = 10) -> str:
    """Failed attempts of a round."""
    return f"failures of {round}"


def _response(message, finish_reason="stop"):
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "test",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": message}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def _tool_call(name, arguments, id="call_1"):
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _calls(*calls):
    message = {"role": "assistant", "content": None, "tool_calls": list(calls)}
    return _response(message, "tool_calls")


def test_a_plain_reply():
    chat = LiteLLMChat(model="openai/x", mock_response="all good")
    reply = chat.invoke("how is the run?")
    assert isinstance(reply, AIMessage) and reply.content == "all good" and not reply.tool_calls
    assert chat.usage.calls == 1


def test_mocked_tool_calls_come_back_parsed():
    mock = _calls(_tool_call("show_failures", '{"round": 2}'), _tool_call("get_status", "", "c2"))
    chat = LiteLLMChat(model="openai/x", mock_response=mock)
    reply = chat.bind_tools([get_status, show_failures]).invoke("failures of round 2?")
    assert [(c["name"], c["args"], c["id"]) for c in reply.tool_calls] == [
        ("show_failures", {"round": 2}, "call_1"),
        ("get_status", {}, "c2"),
    ]


def test_arguments_that_are_not_json_become_invalid_tool_calls():
    mock = _calls(_tool_call("show_failures", "{round: 2"))
    reply = LiteLLMChat(model="openai/x", mock_response=mock).invoke("x")
    assert not reply.tool_calls
    assert reply.invalid_tool_calls[0]["name"] == "show_failures"
    assert "not valid JSON" in reply.invalid_tool_calls[0]["error"]


def test_messages_convert_to_the_openai_format():
    messages = to_openai_messages(
        [
            SystemMessage("be brief"),
            HumanMessage("status?"),
            AIMessage("", tool_calls=[{"name": "get_status", "args": {}, "id": "c1"}]),
            ToolMessage("running", tool_call_id="c1"),
        ]
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["tool_calls"][0]["function"] == {"name": "get_status", "arguments": "{}"}
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "running"}
    assert to_ai_message(type("M", (), {"content": "hi", "tool_calls": None})()).content == "hi"


def test_provider_errors_name_the_model_and_the_api_base():
    chat = LiteLLMChat(
        model="openai/x",
        api_base="http://127.0.0.1:9/v1",
        mock_response="litellm.RateLimitError",
        max_retries=1,
        backoff_s=0.0,
    )
    with pytest.raises(ModelError, match=r"model 'openai/x' at api_base 'http://127.0.0.1:9/v1'"):
        chat.invoke("x")


def test_from_config(monkeypatch):
    settings = OperatorConfig(model="openai/m", api_base="http://127.0.0.1:8000/v1")
    chat = LiteLLMChat.from_config(settings)
    assert (chat.model, chat.api_base, chat.temperature, chat.max_tokens) == (
        "openai/m",
        "http://127.0.0.1:8000/v1",
        0.0,
        512,
    )
    monkeypatch.setenv("SELFIMPROVE_TEST_KEY", "sk-test")
    keyed = LiteLLMChat.from_config(
        settings.model_copy(update={"api_key_env": "SELFIMPROVE_TEST_KEY"})
    )
    assert keyed.api_key.get_secret_value() == "sk-test" and "sk-test" not in repr(keyed)
    with pytest.raises(ModelError, match="backend"):
        LiteLLMChat.from_config(settings.model_copy(update={"backend": "transformers"}))


class _Server:
    """An OpenAI-compatible chat-completions endpoint on loopback, scripted per request."""

    def __init__(self, answer):
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                data = json.dumps(answer(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_base = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    def answer(body):
        last = body["messages"][-1]
        if last["role"] == "tool":
            return _response({"role": "assistant", "content": "The run is: " + last["content"]})
        return _calls(_tool_call("get_status", "{}"))

    server = _Server(answer)
    yield server
    server.close()


def test_the_operator_agent_over_a_local_server(server, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    out = tmp_path / "run"
    start_scripted_run(out, rounds=1).wait(60)
    chat = LiteLLMChat(model="openai/test", api_base=server.api_base, timeout_s=30, max_retries=0)
    reply = Operator(Run(out), chat).reply("how is the run doing?")
    assert "The run is:" in reply and "finished" in reply
    first, second = server.requests
    assert first["model"] == "test" and first["temperature"] == 0 and first["max_tokens"] == 512
    assert "_skip_mcp_handler" not in first
    tools = {t["function"]["name"] for t in first["tools"]}
    assert "get_status" in tools and "pause_loop" in tools and "approve" not in tools
    assert first["messages"][0]["role"] == "system"
    assert first["messages"][-1] == {"role": "user", "content": "how is the run doing?"}
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_status"
    assert (
        second["messages"][-1]["role"] == "tool" and "finished" in second["messages"][-1]["content"]
    )
