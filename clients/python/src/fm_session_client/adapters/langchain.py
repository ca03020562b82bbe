"""LangChain's `BaseChatMessageHistory` over the session service (extra `langchain`).

    history = ServiceChatMessageHistory(session_id, client=client)
    history.add_messages([HumanMessage("hi"), AIMessage("hello")])   # one batch append

Messages map onto the service's own model, so other readers (the browser extension, the
prompt window, the Agents SDK adapter) see a plain conversation: human -> `user`,
AI -> `assistant` with its `tool_calls` (id, name, args), tool -> `tool` answering its
`tool_call_id`, system -> `system`. Text content is the message's content; list content
(multimodal blocks) is stored as its JSON text. What the service's model has no field for
(the message's class, `id`, `name`, `additional_kwargs`, `response_metadata`,
`usage_metadata`, a tool message's `status` and `artifact`, ...) travels in the message's
`metadata` under `langchain`, so a message reads back equal to what was added; that part is
bounded by the service's 16 KiB metadata limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_from_dict,
)

from fm_session_client import models
from fm_session_client.adapters.batching import batches
from fm_session_client.aio import AsyncSessionClient
from fm_session_client.client import SessionClient
from fm_session_client.models import MessageCreate

FORMAT = "langchain.message"
NO_MESSAGE = "msg_0000000000"
_ROLES: dict[str, models.Role] = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
}
#: Fields the service's own message fields carry; everything else goes to metadata.
_CARRIED = {"type", "content", "tool_calls", "tool_call_id"}


def encode(message: BaseMessage) -> MessageCreate:
    """The service message that stands for `message`, with what it cannot hold in metadata."""
    data = message.model_dump(mode="json")
    extras = {
        name: value
        for name, value in data.items()
        if name not in _CARRIED and value not in (None, {}, [], "")
    }
    content = message.content
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    tool_calls = None
    if isinstance(message, AIMessage) and message.tool_calls:
        tool_calls = [
            models.ToolCall(id=call["id"] or "", name=call["name"], arguments=call["args"])
            for call in message.tool_calls
        ]
    marks: dict[str, Any] = {"type": message.type, "fields": json.dumps(extras)}
    if not isinstance(content, str):
        marks["content_json"] = True
    if not text and tool_calls is None:
        # The service stores no empty message; an AI turn can be one.
        text, marks["empty"] = " ", True
    return MessageCreate(
        role=_ROLES.get(message.type, "assistant"),
        content=text,
        metadata={"format": FORMAT, "langchain": marks},
        tool_calls=tool_calls,
        tool_call_id=message.tool_call_id if isinstance(message, ToolMessage) else None,
    )


def decode(message: models.Message) -> BaseMessage:
    """The LangChain message a stored one stands for (also one that others wrote)."""
    marks = message.metadata.get("langchain") if message.metadata.get("format") == FORMAT else None
    if not isinstance(marks, dict):
        return _plain(message)
    content: Any = "" if marks.get("empty") else message.content
    if marks.get("content_json"):
        content = json.loads(message.content)
    data: dict[str, Any] = {**json.loads(marks.get("fields", "{}")), "content": content}
    if message.tool_calls:
        data["tool_calls"] = [_tool_call(call) for call in message.tool_calls]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    return messages_from_dict([{"type": marks["type"], "data": data}])[0]


def _tool_call(call: models.ReturnedToolCall) -> dict[str, Any]:
    args = call.arguments
    if isinstance(args, str):
        try:
            args = json.loads(args) if args else {}
        except ValueError:
            args = {"arguments": args}
    return {"name": call.name, "args": args or {}, "id": call.id, "type": "tool_call"}


def _plain(message: models.Message) -> BaseMessage:
    if message.role == "user":
        return HumanMessage(message.content)
    if message.role == "system":
        return SystemMessage(message.content)
    if message.role == "tool":
        return ToolMessage(message.content, tool_call_id=message.tool_call_id or "")
    return AIMessage(
        message.content, tool_calls=[_tool_call(call) for call in message.tool_calls or ()]
    )


def _encode_all(messages: Sequence[BaseMessage]) -> list[MessageCreate]:
    for message in messages:
        if isinstance(message, ChatMessage | FunctionMessage):
            raise TypeError(f"{type(message).__name__} has no place in the session service")
    return [encode(message) for message in messages]


class ServiceChatMessageHistory(BaseChatMessageHistory):
    """The chat history of one service session, through a sync and/or an async client.

    The sync methods need `client`; the async ones use `async_client` when given (else
    they run the sync ones in a thread, as LangChain's defaults do).
    """

    def __init__(
        self,
        session_id: str,
        *,
        client: SessionClient | None = None,
        async_client: AsyncSessionClient | None = None,
    ) -> None:
        if client is None and async_client is None:
            raise ValueError("give a client, an async_client, or both")
        self.session_id = session_id
        self.client = client
        self.async_client = async_client

    def _sync(self) -> SessionClient:
        if self.client is None:
            raise RuntimeError("this history has only an async client: use the a* methods")
        return self.client

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return [decode(m) for m in self._sync().iter_messages(self.session_id, page_size=500)]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """All the messages in one batch append (runs of 64 for longer lists)."""
        for batch in batches(_encode_all(messages)):
            self._sync().append_batch(self.session_id, batch)

    def clear(self) -> None:
        self._sync().rewind(self.session_id, NO_MESSAGE)

    async def aget_messages(self) -> list[BaseMessage]:
        if self.async_client is None:
            return await super().aget_messages()
        return [
            decode(m) async for m in self.async_client.iter_messages(self.session_id, page_size=500)
        ]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if self.async_client is None:
            return await super().aadd_messages(messages)
        for batch in batches(_encode_all(messages)):
            await self.async_client.append_batch(self.session_id, batch)

    async def aclear(self) -> None:
        if self.async_client is None:
            return await super().aclear()
        await self.async_client.rewind(self.session_id, NO_MESSAGE)
