"""Transcripts of a session, streamed: the HTTP export and the CLI share them.

Every message (with its tool calls and token count) comes first, then every
summary, oldest first. Both are read in bounded chunks, so a 100,000-message
session is never built in memory at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from session_service.store.sessions import SessionStore


async def json_transcript(
    store: SessionStore, user_id: str, session: dict[str, Any], upto: int
) -> AsyncIterator[bytes]:
    """The session and every message up to `upto` as one JSON object, in pieces."""
    head = orjson.dumps(session)
    yield head[:-1] + b',"messages":['
    separator = b""
    async for chunk in store.iter_messages(user_id, session["session_id"], upto):
        # One body piece per stored chunk, not per message: a piece per message made a
        # 100,000-message export 100,000 socket writes.
        yield separator + b",".join(orjson.dumps(message) for message in chunk)
        separator = b","
    # Summaries never replace the messages they cover: both are in the transcript.
    yield b'],"summaries":['
    separator = b""
    async for summaries in store.iter_summaries(user_id, session["session_id"]):
        yield separator + b",".join(orjson.dumps(summary) for summary in summaries)
        separator = b","
    yield b"]}"


async def markdown_transcript(
    store: SessionStore, user_id: str, session: dict[str, Any], upto: int
) -> AsyncIterator[bytes]:
    """The same transcript as markdown, in pieces."""
    lines = [
        f"# {session['title'] or 'Untitled session'}",
        "",
        f"- Session: `{session['session_id']}`",
        f"- Status: {session['status']}",
        f"- Type: {session['session_type']}",
        f"- Created: {session['created_at']}",
        f"- Last activity: {session['last_activity_at']}",
        f"- Messages: {session['message_count']}",
    ]
    if session["description"]:
        lines += ["", session["description"]]
    lines += ["", "## Conversation", ""]
    yield ("\n".join(lines) + "\n").encode()
    async for chunk in store.iter_messages(user_id, session["session_id"], upto):
        yield "".join(_markdown_message(m) for m in chunk).encode()
    heading = "## Summaries\n\n"
    async for summaries in store.iter_summaries(user_id, session["session_id"]):
        parts = [
            f"### {s['summary_id']} · covers through {s['covers_through']} · "
            f"{s['created_at']} · {_tokens(s)}\n\n{s['content']}\n\n"
            for s in summaries
        ]
        yield (heading + "".join(parts)).encode()
        heading = ""


def _tokens(item: dict[str, Any]) -> str:
    return f"{item['token_count']} tokens{' (estimated)' if item['token_count_estimated'] else ''}"


def _markdown_message(m: dict[str, Any]) -> str:
    out = f"### {m['role']} · {m['timestamp']} · {m['message_id']} · {_tokens(m)}\n\n"
    if "tool_call_id" in m:
        out += f"_result of tool call `{m['tool_call_id']}`_\n\n"
    if m["content"]:
        out += f"{m['content']}\n\n"
    for call in m.get("tool_calls", ()):
        args = call["arguments"]
        shown = args if isinstance(args, str) else orjson.dumps(args).decode()
        out += f"- tool call `{call['id']}`: {call['name']}\n\n```json\n{shown}\n```\n\n"
    return out
