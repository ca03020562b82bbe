"""The OpenAI Agents SDK session over the real service: every item type round-trips,
and the SDK's own agent loop (Runner) keeps its conversation there across runs.

The model is a small deterministic `Model` written here: no network, no API key.
"""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator
from typing import Any, cast

from agents import Agent, RunConfig, Runner, function_tool
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.memory import Session, SessionSettings
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
)
from openai.types.responses.response_reasoning_item import Summary

from fm_session_client import AsyncSessionClient, SessionClient
from fm_session_client.adapters.openai_agents import ServiceSession
from tests.ops.service import ServiceProcess

DEEP = {"a": {"b": {"c": {"d": {"e": {"f": [1, 2.5, None, True, "ünïcödé ✓"]}}}}}}


def item_types() -> set[str]:
    """Every `type` an SDK input item can have (the union TResponseInputItem)."""

    def literals(hint: Any) -> set[str]:
        if isinstance(hint, str):
            return {hint}
        return set().union(*(literals(arg) for arg in typing.get_args(hint)))

    return set().union(
        *(
            literals(typing.get_type_hints(member).get("type"))
            for member in typing.get_args(TResponseInputItem)
        )
    )


def sample_items() -> list[dict[str, Any]]:
    """One item of every type, the common ones as the SDK writes them, all with odd JSON."""
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "why is /var full?"},
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Prefer df and du."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "this screenshot"},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,iVBOR",
                    "detail": "low",
                },
            ],
        },
        {
            "id": "msg_abc",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "disk_usage",
            "arguments": '{"path": "/var", "depth": 2}',
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "/var/log 9.1G"},
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "structured"}],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "logs grew"}],
            "encrypted_content": "gAAAA...",
        },
        {"type": "item_reference", "id": "msg_abc"},
    ]
    # The second output answers a call made in the same batch, after the first.
    items.insert(7, {"type": "function_call", "call_id": "call_2", "name": "du", "arguments": ""})
    covered = {item.get("type", "message") for item in items}
    for kind in sorted(item_types() - covered):
        items.append(
            {
                "type": kind,
                "id": f"{kind}_1",
                "call_id": f"{kind}-call",
                "status": "completed",
                "payload": DEEP,
                "text": "x" * 3000,
            }
        )
    return items


async def test_every_item_type_round_trips(aclient: AsyncSessionClient) -> None:
    session = await ServiceSession.open(aclient, title="items")
    assert isinstance(session, Session)
    items = sample_items()
    assert {item.get("type", "message") for item in items} == item_types()
    stored = cast(list[TResponseInputItem], items)
    await session.add_items(stored[:5])
    await session.add_items(stored[5:])
    assert await session.get_items() == items
    assert await session.get_items(limit=3) == items[-3:]
    assert await session.get_items(limit=1000) == items

    popped = await session.pop_item()
    assert popped == items[-1]
    assert await session.get_items() == items[:-1]
    await session.clear_session()
    assert await session.get_items() == []
    assert await session.pop_item() is None


async def test_many_items_span_batches_and_settings_limit(aclient: AsyncSessionClient) -> None:
    session = await ServiceSession.open(aclient, session_settings=SessionSettings(limit=5))
    items = [{"role": "user", "content": f"line {n}"} for n in range(150)]
    await session.add_items(cast(list[TResponseInputItem], items))
    assert await session.get_items() == items[-5:]
    assert await session.get_items(limit=150) == items
    stats = await aclient.stats(session.session_id)
    assert stats.message_count == 150


async def test_foreign_messages_read_as_items(aclient: AsyncSessionClient) -> None:
    """Messages another client wrote come back as the SDK items they stand for."""
    sid = (await aclient.create_session()).session_id
    await aclient.append(sid, "user", "hello")
    await aclient.append(
        sid, "assistant", tool_calls=[{"id": "c9", "name": "ping", "arguments": {"host": "db"}}]
    )
    await aclient.append(sid, "tool", "pong", tool_call_id="c9")
    items = await ServiceSession(aclient, sid).get_items()
    assert items == [
        {"role": "user", "content": "hello"},
        {"type": "function_call", "call_id": "c9", "name": "ping", "arguments": '{"host": "db"}'},
        {"type": "function_call_output", "call_id": "c9", "output": "pong"},
    ]


class ScriptedModel(Model):
    """Asks the `disk_usage` tool once per user turn, then answers with what it saw:
    the tool's output and how many user turns the conversation holds so far."""

    def __init__(self) -> None:
        self.inputs: list[list[dict[str, Any]]] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *args: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        history = (
            [{"role": "user", "content": input}]
            if isinstance(input, str)
            else [dict(cast(dict[str, Any], item)) for item in input]
        )
        self.inputs.append(history)
        turns = sum(1 for item in history if item.get("role") == "user")
        last = history[-1]
        if last.get("type") == "function_call_output":
            text = f"turn {turns}: {last['output']}"
            output: list[Any] = [
                ResponseOutputMessage(
                    id=f"msg_{turns}",
                    type="message",
                    role="assistant",
                    status="completed",
                    content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
                )
            ]
        else:
            output = [
                ResponseReasoningItem(
                    id=f"rs_{turns}",
                    type="reasoning",
                    summary=[Summary(type="summary_text", text="check the disk")],
                ),
                ResponseFunctionToolCall(
                    id=f"fc_{turns}",
                    type="function_call",
                    call_id=f"call_{turns}",
                    name="disk_usage",
                    arguments=json.dumps({"path": f"/var/{turns}"}),
                    status="completed",
                ),
            ]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("this test model does not stream")


@function_tool
def disk_usage(path: str) -> str:
    """How full a path is."""
    return f"{path} is 97% full"


async def test_agent_loop_continues_across_runs(aclient: AsyncSessionClient) -> None:
    model = ScriptedModel()
    agent = Agent(
        name="sre", instructions="Find what fills the disk.", model=model, tools=[disk_usage]
    )
    config = RunConfig(tracing_disabled=True)
    session = await ServiceSession.open(aclient, client_id="agent-run")

    first = await Runner.run(agent, "the disk is full", session=session, run_config=config)
    assert first.final_output == "turn 1: /var/1 is 97% full"

    # A second run, as a new process would: a new client, the same session id.
    async with AsyncSessionClient(
        aclient.settings.base_url, user_id=aclient.settings.user_id
    ) as again:
        resumed = await ServiceSession.open(again, client_id="agent-run")
        assert resumed.session_id == session.session_id
        second = await Runner.run(agent, "still full", session=resumed, run_config=config)
    assert second.final_output == "turn 2: /var/2 is 97% full"
    # The second run's model saw the whole first run, loaded from the service.
    assert model.inputs[2][:4] == model.inputs[1]
    assert model.inputs[2][4]["role"] == "assistant"
    assert model.inputs[2][5:] == [{"role": "user", "content": "still full"}]

    items = await session.get_items()
    kinds = [item.get("type", "message") for item in cast(list[dict[str, Any]], items)]
    assert kinds == ["message", "reasoning", "function_call", "function_call_output", "message"] * 2
    with SessionClient(aclient.settings.base_url, user_id=aclient.settings.user_id) as sync:
        roles = [m.role for m in sync.iter_messages(session.session_id)]
    assert roles == ["user", "assistant", "assistant", "tool", "assistant"] * 2


class AppendsBeforeRewind(AsyncSessionClient):
    """Another writer appends between pop_item's read and its rewind, once."""

    sneaked = False

    async def rewind(
        self, session_id: str, to_message_id: str, *, if_match: str | None = None
    ) -> Any:
        if not self.sneaked:
            self.sneaked = True
            await self.append(session_id, "user", "sneaked in")
        return await super().rewind(session_id, to_message_id, if_match=if_match)


async def test_pop_item_never_removes_a_message_it_did_not_read(
    service: ServiceProcess, user_id: str
) -> None:
    async with AppendsBeforeRewind(service.url, user_id=user_id) as client:
        session = await ServiceSession.open(client)
        await session.add_items(
            [{"role": "user", "content": "first"}, {"role": "user", "content": "second"}]
        )
        popped = await session.pop_item()
        # The rewind planned on the old newest message failed its If-Match, so the pop
        # read again and removed the message that was newest then.
        assert popped == {"role": "user", "content": "sneaked in"}
        assert await session.get_items() == [
            {"role": "user", "content": "first"},
            {"role": "user", "content": "second"},
        ]
