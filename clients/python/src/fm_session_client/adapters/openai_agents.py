"""The OpenAI Agents SDK's `Session` protocol over the session service (extra `openai-agents`).

    session = ServiceSession(client, session_id)      # or: await ServiceSession.open(client)
    await Runner.run(agent, "why is the disk full?", session=session)

One SDK item is one service message. The item's exact JSON is the message's `content`
(bounded by MAX_MESSAGE_BYTES like any message), so `get_items` returns what `add_items`
stored, equal, for every item type the SDK has now or adds later. `metadata` marks the
message as an SDK item (`{"format": "openai-agents.item", "item_type": ...}`). Metadata
could not hold the item itself: it is bounded to 16 KiB and 5 levels, and SDK items nest
deeper and grow larger.

The role and tool fields are a projection of the item for the service and for other
readers of the session: messages keep their role (`developer` is `system`), a
`function_call` is an assistant message with that tool call, its `function_call_output` a
`tool` message answering it, and every other item (reasoning, hosted tool calls, ...) an
assistant message. So the service checks that each output answers one earlier call, and
its prompt window never separates a call from its output.

Messages that others wrote (e.g. the browser extension's) are read as SDK items too: plain
messages as `{"role", "content"}`, an assistant's tool calls as `function_call` items, a
tool message as a `function_call_output`.
"""

from __future__ import annotations

import json
from typing import Any, cast

from agents.items import TResponseInputItem
from agents.memory.session_settings import SessionSettings, resolve_session_limit

from fm_session_client import errors, models
from fm_session_client.adapters.batching import batches
from fm_session_client.aio import AsyncSessionClient
from fm_session_client.models import MessageCreate

FORMAT = "openai-agents.item"
#: The service's bound on a tool call's arguments (larger ones are kept in the item only).
MAX_ARGUMENT_BYTES = 16 * 1024
NO_MESSAGE = "msg_0000000000"


def encode(item: TResponseInputItem) -> MessageCreate:
    """The service message that stores `item` exactly."""
    data = cast(dict[str, Any], item)
    content = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    kind = data.get("type", "message")
    metadata = {"format": FORMAT, "item_type": str(kind)}
    if kind == "function_call":
        call: dict[str, Any] = {"id": data["call_id"], "name": data["name"]}
        arguments = data.get("arguments")
        if isinstance(arguments, str) and len(arguments.encode()) <= MAX_ARGUMENT_BYTES:
            call["arguments"] = arguments
        return MessageCreate(
            role="assistant",
            content=content,
            metadata=metadata,
            tool_calls=[models.ToolCall(**call)],
        )
    if kind == "function_call_output":
        return MessageCreate(
            role="tool", content=content, metadata=metadata, tool_call_id=data["call_id"]
        )
    role = data.get("role") if kind == "message" else None
    mapped = {"user": "user", "system": "system", "developer": "system"}.get(str(role), "assistant")
    return MessageCreate(role=mapped, content=content, metadata=metadata)


def decode(message: models.Message) -> list[TResponseInputItem]:
    """The SDK items a stored message stands for (one, unless others wrote it)."""
    if message.metadata.get("format") == FORMAT:
        return [cast(TResponseInputItem, json.loads(message.content))]
    items: list[dict[str, Any]] = []
    if message.role == "tool":
        items.append(
            {
                "type": "function_call_output",
                "call_id": message.tool_call_id,
                "output": message.content,
            }
        )
    else:
        if message.content:
            items.append({"role": message.role, "content": message.content})
        for call in message.tool_calls or ():
            arguments = call.arguments
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else json.dumps(arguments or {}),
                }
            )
    return [cast(TResponseInputItem, item) for item in items]


class ServiceSession:
    """An Agents SDK session stored in the session service under `session_id`."""

    def __init__(
        self,
        client: AsyncSessionClient,
        session_id: str,
        *,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.session_settings = session_settings

    @classmethod
    async def open(
        cls,
        client: AsyncSessionClient,
        *,
        client_id: str | None = None,
        title: str | None = None,
        session_settings: SessionSettings | None = None,
    ) -> ServiceSession:
        """A new service session, or with `client_id` the live one that id already has."""
        created = await client.create_session(
            client_id=client_id, title=title, session_type="agent"
        )
        return cls(client, created.session_id, session_settings=session_settings)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The history, oldest first; with a limit, the latest `limit` items."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit is None:
            messages = [m async for m in self.client.iter_messages(self.session_id, page_size=500)]
            return [item for message in messages for item in decode(message)]
        if limit <= 0:
            return []
        newest: list[TResponseInputItem] = []
        async for message in self.client.iter_messages(
            self.session_id, order="desc", page_size=min(limit, 500)
        ):
            newest[:0] = decode(message)
            if len(newest) >= limit:
                break
        return newest[-limit:]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Store the items in order: each run of up to 64 is one all-or-nothing batch,
        sent exactly once even when its reply is lost and it is retried."""
        for batch in batches([encode(item) for item in items]):
            await self.client.append_batch(self.session_id, batch)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item: a rewind to the message before it.

        The rewind is conditional on the messages' ETag, so a message appended meanwhile
        is never removed in its place; it is read again and the newest is popped.
        """
        while True:
            page = await self.client.list_messages(self.session_id, limit=2, order="desc")
            assert page is not None
            if not page.messages:
                return None
            keep = page.messages[1].message_id if len(page.messages) > 1 else NO_MESSAGE
            try:
                await self.client.rewind(self.session_id, keep, if_match=page.etag)
            except errors.PreconditionFailed:
                continue
            items = decode(page.messages[0])
            return items[-1] if items else None

    async def clear_session(self) -> None:
        """Remove every item (the service session itself stays, empty)."""
        await self.client.rewind(self.session_id, NO_MESSAGE)
