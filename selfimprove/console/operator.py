"""The console's operator: slash commands, and free text for a tool-calling LLM agent.

    from selfimprove.console.operator import Operator, make_operator
    operator = make_operator(Run("runs/demo"), config)    # model from console.operator
    operator.reply("/status")                             # slash commands: no LLM needed
    operator.reply("why did round 2 roll back?")          # the agent reads the run with tools

The agent is a small LangGraph graph (``build_operator_graph``): the model,
with the run's tools bound, and a ``ToolNode`` in a loop until the model answers
without a tool call. Its tools read the run (status, rounds, failures, the example
store, events) and steer it (pause, resume, stop, budgets, new tasks); approving
or rejecting a promotion is not among them: that stays a human action
(``/approve``, ``/reject`` or the console's buttons). A tool's error goes back to
the model as the tool's result, so it can correct itself or explain. The
conversation is kept per ``Operator`` in an in-memory LangGraph checkpointer.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from selfimprove.config import Config
from selfimprove.console import commands
from selfimprove.models.base import ModelError
from selfimprove.runs import Run

THREAD_ID = "operator"
MAX_STEPS = 24  # graph steps per reply: about 11 tool calls
KEEP_MESSAGES = 40  # the conversation's tail that the model sees
MAX_TOOL_CHARS = 4000

SYSTEM_PROMPT = """\
You are the operator of a selfimprove run: a small language model improves itself in \
gated rounds. Each round it attempts verifiable training tasks, agents verify, critique, \
self-debug and inject errors, the results are stored as examples with lineage, the model \
is fine-tuned on them, and a gate promotes the new model only if its held-out pass@1 beats \
the current one. Round 0 is the baseline.

Answer the human's questions about the run and carry out what they ask, using the tools: \
read before you answer, never guess numbers. Keep answers short; quote example ids so the \
human can open them with /example ID. Pausing, stopping and budgets change a live run: do \
them only when asked. You cannot approve or reject a promotion; when one is waiting, tell \
the human to type /approve or /reject. If a tool returns an error, fix the call or explain.\
"""

NO_MODEL = (
    "No operator model is configured, so free text has no one to answer it. Set "
    "`console.operator.model` to a litellm model (e.g. `openai/gpt-4o-mini`, or "
    "`openai/NAME` with `api_base` pointing at a local OpenAI-compatible server), or pass "
    "`--model` to `selfimprove chat`. Slash commands work without one: type `/help`."
)


def operator_tools(run: Run) -> list[BaseTool]:
    """The agent's tools over ``run``; every result is a compact markdown string."""

    @tool(parse_docstring=True)
    def get_status() -> str:
        """Where the run stands: state, rounds done, held-out pass@1, pending approval, control."""
        return _short(commands.status_text(run))

    @tool(parse_docstring=True)
    def list_rounds() -> str:
        """The table of rounds: promoted or not, held-out pass@1 per suite, the gate's reasons."""
        return _short(commands.rounds_text(run))

    @tool(parse_docstring=True)
    def show_failures(round: int, limit: int = 10) -> str:
        """The student's failed attempts in one round, with ids.

        Args:
            round: the round (0 is the baseline's held-out attempts).
            limit: at most this many attempts.
        """
        return _short(commands.failures_text(run, round, _limit(limit)))

    @tool(parse_docstring=True)
    def search_memory(query: str, kind: str | None = None, limit: int = 5) -> str:
        """Stored examples most similar to a text.

        Args:
            query: text to look for, e.g. a task or a kind of mistake.
            kind: only this kind: attempt, positive, negative, pair, workflow or critique.
            limit: at most this many examples.
        """
        return _short(commands.search_text(run, query, kind=kind, limit=_limit(limit)))

    @tool(parse_docstring=True)
    def show_example(example_id: str) -> str:
        """One stored example with its lineage (parents, nearest first, and children).

        Args:
            example_id: the example's id, as shown by the other tools.
        """
        return _short(commands.example_text(run, example_id))

    @tool(parse_docstring=True)
    def recent_events(n: int = 10) -> str:
        """The run's last events (round started, progress, gate, approval, paused, ...).

        Args:
            n: how many of the latest events.
        """
        return _short(commands.events_text(run, _limit(n)))

    @tool(parse_docstring=True)
    def pause_loop() -> str:
        """Pause the loop after its current step (its state is saved)."""
        return _short(commands.pause_text(run))

    @tool(parse_docstring=True)
    def resume_loop() -> str:
        """Resume a paused loop."""
        return _short(commands.resume_text(run))

    @tool(parse_docstring=True)
    def stop_loop() -> str:
        """Stop the loop after its current step; it can be resumed later from the terminal."""
        return _short(commands.stop_text(run))

    @tool(parse_docstring=True)
    def set_budget(rounds: int | None = None, tasks_per_round: int | None = None) -> str:
        """Change the run's budget; the loop applies it at its next step.

        Args:
            rounds: improvement rounds in all (not counting the baseline).
            tasks_per_round: training tasks drawn each round.
        """
        return _short(commands.budget_text(run, rounds=rounds, tasks_per_round=tasks_per_round))

    @tool(parse_docstring=True)
    def add_tasks(tasks: list[dict[str, Any]]) -> str:
        """Queue new training tasks; the loop draws them from its next round on.

        Args:
            tasks: task objects with id, prompt and kind ("answer" with an answer, or
                "code" with tests and entry_point); optional suite and difficulty (1-5).
        """
        added = run.add_tasks(tasks)
        return f"Queued {added} new task(s) ({len(tasks) - added} already queued)."

    return [
        get_status,
        list_rounds,
        show_failures,
        search_memory,
        show_example,
        recent_events,
        pause_loop,
        resume_loop,
        stop_loop,
        set_budget,
        add_tasks,
    ]


def build_operator_graph(
    run: Run,
    model: BaseChatModel,
    *,
    checkpointer: BaseCheckpointSaver | None = None,
    system_prompt: str = SYSTEM_PROMPT,
) -> CompiledStateGraph:
    """The agent over ``run``: model ⇄ tools until the model answers without a tool call."""
    tools = operator_tools(run)
    bound = model.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        messages = [SystemMessage(system_prompt), *_recent(state["messages"])]
        return {"messages": [bound.invoke(messages)]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools, handle_tool_errors=_tool_error))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


class Operator:
    """Answers what a human types in the console; see the module docstring.

    Args:
        run: the run to read and steer.
        model: a tool-calling chat model for free text; None answers free text with
            a hint to configure one (slash commands still work).
        by: who approvals and rejections are recorded as.
    """

    def __init__(self, run: Run, model: BaseChatModel | None = None, *, by: str = "operator"):
        self.run = run
        self.model = model
        self.by = by
        self.graph = (
            build_operator_graph(run, model, checkpointer=InMemorySaver()) if model else None
        )
        self._lock = threading.Lock()  # one reply at a time: one conversation

    def reply(self, text: str) -> str:
        """The markdown answer to one line typed by the human."""
        text = text.strip()
        if not text:
            return "Type a question, or `/help` for the commands."
        if text.startswith("/"):
            return commands.run_command(self.run, text, by=self.by)
        if self.graph is None:
            return NO_MODEL
        config = {"configurable": {"thread_id": THREAD_ID}, "recursion_limit": MAX_STEPS}
        with self._lock:
            try:
                state = self.graph.invoke({"messages": [HumanMessage(text)]}, config)
            except ModelError as exc:
                return f"The operator model failed: {exc}. Slash commands still work (`/help`)."
            except GraphRecursionError:
                return (
                    f"The operator gave up after {MAX_STEPS} steps without an answer; "
                    "ask something narrower, or use the slash commands (`/help`)."
                )
        return _final_text(state["messages"][-1])


def make_operator(run: Run, config: Config) -> Operator:
    """An ``Operator`` whose model comes from ``config.console.operator`` (None: no model).

    Raises:
        ModelError: the operator model is misconfigured (not litellm, API key unset).
    """
    from selfimprove.console.llm import LiteLLMChat

    settings = config.console.operator
    model = LiteLLMChat.from_config(settings) if settings.model else None
    return Operator(run, model)


def _short(text: str) -> str:
    return text if len(text) <= MAX_TOOL_CHARS else text[:MAX_TOOL_CHARS] + "\n… (truncated)"


def _limit(n: int) -> int:
    return max(1, min(int(n), 50))


def _recent(messages: list[BaseMessage]) -> list[BaseMessage]:
    """The conversation's tail, starting at a human message (never mid tool call)."""
    if len(messages) <= KEEP_MESSAGES:
        return messages
    tail = messages[-KEEP_MESSAGES:]
    start = next((i for i, m in enumerate(tail) if isinstance(m, HumanMessage)), None)
    return tail[start:] if start is not None else messages[-1:]


def _tool_error(exc: Exception) -> str:
    """A tool's failure, as the result the model sees."""
    text = str(exc).strip() or type(exc).__name__
    return json.dumps({"error": text[:MAX_TOOL_CHARS]}, ensure_ascii=False)


def _final_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, list):  # content blocks
        content = "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)
    if content.strip():
        return content
    if isinstance(message, AIMessage) and message.invalid_tool_calls:
        bad = message.invalid_tool_calls[0]
        return (
            f"The operator model made a tool call that could not be read ({bad.get('name')!r}: "
            f"{bad.get('error')}); try again or use the slash commands (`/help`)."
        )
    return "(the operator model answered with no text; try rephrasing, or `/help`)"
