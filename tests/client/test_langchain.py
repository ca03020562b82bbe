"""LangChain's chat history over the real service: human, AI with tool calls, tool and
system messages round-trip, `add_messages` is one batch, and langchain-core's tool-calling
loop keeps its conversation there across runs.

The model is a small deterministic `BaseChatModel` written here: no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_core.tools import BaseTool, tool

from fm_session_client import AsyncSessionClient, SessionClient
from fm_session_client.adapters.langchain import ServiceChatMessageHistory
from tests.ops.service import ServiceProcess


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


def conversation() -> list[BaseMessage]:
    return [
        SystemMessage("You are an SRE assistant."),
        HumanMessage("Why is /var full?", id="h1"),
        AIMessage(
            "",
            id="a1",
            tool_calls=[
                {"name": "disk_usage", "args": {"path": "/var", "depth": 2}, "id": "call_1"},
                {"name": "log_size", "args": {}, "id": "call_2"},
            ],
            usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
            response_metadata={"model_name": "scripted"},
        ),
        ToolMessage("/var/log 9.1G", tool_call_id="call_1", name="disk_usage"),
        ToolMessage("failed", tool_call_id="call_2", status="error", artifact={"rc": 2}),
        AIMessage("Logs fill it: rotate them. ✓", additional_kwargs={"refusal": None}),
        HumanMessage([{"type": "text", "text": "and this?"}, {"type": "text", "text": "df"}]),
        AIMessage(""),
    ]


def test_messages_round_trip_in_one_batch(service: ServiceProcess, user_id: str) -> None:
    transport = CountingTransport()
    with SessionClient(service.url, user_id=user_id, transport=transport) as client:
        sid = client.create_session().session_id
        history = ServiceChatMessageHistory(sid, client=client)
        messages = conversation()
        transport.requests.clear()
        history.add_messages(messages)
        assert transport.requests == [f"POST /api/v1/sessions/{sid}/messages/batch"]
        assert history.messages == messages
        roles = [m.role for m in client.iter_messages(sid)]
        assert roles == [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "user",
            "assistant",
        ]
        history.add_user_message("one more")
        assert history.messages[-1] == HumanMessage("one more")
        history.clear()
        assert history.messages == []


def test_messages_others_wrote_read_as_langchain_messages(client: SessionClient) -> None:
    sid = client.create_session().session_id
    client.append(sid, "user", "hi")
    client.append(
        sid, "assistant", tool_calls=[{"id": "c1", "name": "ping", "arguments": {"h": "db"}}]
    )
    client.append(sid, "tool", "pong", tool_call_id="c1")
    history = ServiceChatMessageHistory(sid, client=client)
    assert history.messages == [
        HumanMessage("hi"),
        AIMessage("", tool_calls=[{"name": "ping", "args": {"h": "db"}, "id": "c1"}]),
        ToolMessage("pong", tool_call_id="c1"),
    ]


async def test_async_history(aclient: AsyncSessionClient) -> None:
    sid = (await aclient.create_session()).session_id
    history = ServiceChatMessageHistory(sid, async_client=aclient)
    await history.aadd_messages(conversation())
    assert await history.aget_messages() == conversation()
    await history.aclear()
    assert await history.aget_messages() == []
    with pytest.raises(RuntimeError):
        history.clear()


class ScriptedChatModel(BaseChatModel):
    """Calls `disk_usage` once per human turn, then answers with its output and the
    number of human turns in the conversation it was given."""

    seen: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        turns = sum(isinstance(m, HumanMessage) for m in messages)
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(f"turn {turns}: {last.content}")
        else:
            call = {"name": "disk_usage", "args": {"path": f"/var/{turns}"}, "id": f"call_{turns}"}
            reply = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def disk_usage(path: str) -> str:
    """How full a path is."""
    return f"{path} is 97% full"


def run_agent(
    model: BaseChatModel, tools: list[BaseTool], history: ServiceChatMessageHistory, question: str
) -> str:
    """langchain-core's tool-calling loop; the turn is stored as one batch at the end."""
    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    new: list[BaseMessage] = [HumanMessage(question)]
    while True:
        reply = bound.invoke(history.messages + new)
        assert isinstance(reply, AIMessage)
        new.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            new.append(by_name[call["name"]].invoke(call))
    history.add_messages(new)
    return str(reply.content)


def test_agent_loop_continues_across_runs(service: ServiceProcess, user_id: str) -> None:
    model = ScriptedChatModel(seen=[])
    with SessionClient(service.url, user_id=user_id) as client:
        sid = client.resume_or_create("lc-agent").session_id
        first = run_agent(
            model, [disk_usage], ServiceChatMessageHistory(sid, client=client), "full"
        )
    assert first == "turn 1: /var/1 is 97% full"
    with SessionClient(service.url, user_id=user_id) as client:
        again = client.resume_or_create("lc-agent")
        assert again.session_resumed and again.session_id == sid
        history = ServiceChatMessageHistory(sid, client=client)
        second = run_agent(model, [disk_usage], history, "still full")
        assert second == "turn 2: /var/2 is 97% full"
        # The second run's first model call saw the whole first run, from the service.
        assert model.seen[2][:4] == history.messages[:4]
        kinds = [type(m).__name__ for m in history.messages]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"] * 2


class CountingChatModel(BaseChatModel):
    """Answers how many human messages it was given, so a test sees the history it got."""

    @property
    def _llm_type(self) -> str:
        return "counting"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        humans = [m.content for m in messages if isinstance(m, HumanMessage)]
        reply = AIMessage(f"{len(humans)} questions so far: {humans}")
        return ChatResult(generations=[ChatGeneration(message=reply)])


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history(service: ServiceProcess, user_id: str) -> None:
    """LangChain's own history wrapper: it loads the history by session id before the
    chain runs and stores the exchange (one add_messages: one batch) after it."""
    transport = CountingTransport()
    with SessionClient(service.url, user_id=user_id, transport=transport) as client:
        sid = client.create_session().session_id
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
        )
        chain = RunnableWithMessageHistory(
            prompt | CountingChatModel(),
            lambda session_id: ServiceChatMessageHistory(session_id, client=client),
            input_messages_key="question",
            history_messages_key="history",
        )
        config: RunnableConfig = {"configurable": {"session_id": sid}}
        first = chain.invoke({"question": "why?"}, config=config)
        transport.requests.clear()
        second = chain.invoke({"question": "and now?"}, config=config)
        writes = [r for r in transport.requests if r.startswith("POST")]
        assert writes == [f"POST /api/v1/sessions/{sid}/messages/batch"]
        assert first.content == "1 questions so far: ['why?']"
        assert second.content == "2 questions so far: ['why?', 'and now?']"
        assert [m.role for m in client.iter_messages(sid)] == ["user", "assistant"] * 2
