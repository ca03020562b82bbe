"""The conversation half of `AsyncSessionClient`: messages, prompt window, summaries, branches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from fm_session_client import calls, models
from fm_session_client.calls import Call, MessageInput

T = TypeVar("T")


class AsyncConversationApi:
    """Each method runs one `Call` through the client's `_run` (retries and deadline)."""

    async def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    # ---- messages ----

    async def append(
        self,
        session_id: str,
        role: models.Role,
        content: str = "",
        *,
        metadata: Mapping[str, Any] | None = None,
        tool_calls: Sequence[models.ToolCall | Mapping[str, Any]] | None = None,
        tool_call_id: str | None = None,
        token_count: int | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.AppendedMessage:
        """Append one message, exactly once (an Idempotency-Key is made when none is given)."""
        return await self._run(
            calls.append(
                session_id,
                role,
                content,
                metadata=metadata,
                tool_calls=tool_calls,
                tool_call_id=tool_call_id,
                token_count=token_count,
                if_match=if_match,
                if_none_match=if_none_match,
                idempotency_key=idempotency_key,
            )
        )

    async def append_batch(
        self,
        session_id: str,
        messages: Iterable[MessageInput],
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.AppendedBatch:
        """Append 1-64 messages all or nothing, exactly once (one key for the batch)."""
        return await self._run(
            calls.append_batch(
                session_id,
                messages,
                if_match=if_match,
                if_none_match=if_none_match,
                idempotency_key=idempotency_key,
            )
        )

    async def list_messages(
        self,
        session_id: str,
        *,
        limit: int = 100,
        order: Literal["asc", "desc"] | None = None,
        after: str | None = None,
        before: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> models.MessagePage | None:
        """One page (None: unchanged since `if_none_match`)."""
        return await self._run(
            calls.list_messages(
                session_id,
                limit=limit,
                order=order,
                after=after,
                before=before,
                if_match=if_match,
                if_none_match=if_none_match,
            )
        )

    async def iter_messages(
        self,
        session_id: str,
        *,
        order: Literal["asc", "desc"] = "asc",
        after: str | None = None,
        before: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[models.Message]:
        """Every message, oldest first (`order="desc"`: newest first), page by page."""
        cursor = after if order == "asc" else before
        while True:
            page = await self._run(
                calls.list_messages(
                    session_id,
                    limit=page_size,
                    order=order,
                    after=cursor if order == "asc" else None,
                    before=cursor if order == "desc" else None,
                )
            )
            assert page is not None  # no If-None-Match was sent
            for message in page.messages:
                yield message
            if not page.has_more or page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_message(self, session_id: str, message_id: str) -> models.Message:
        return await self._run(calls.get_message(session_id, message_id))

    async def stats(self, session_id: str) -> models.SessionStats:
        return await self._run(calls.stats(session_id))

    async def export(self, session_id: str) -> models.SessionWithMessages:
        return await self._run(calls.export(session_id))

    async def export_markdown(self, session_id: str) -> str:
        return await self._run(calls.export_markdown(session_id))

    # ---- prompt window, summaries, branches ----

    async def window(self, session_id: str, max_tokens: int) -> models.Window:
        """The latest summary and the newest messages that fit in `max_tokens`."""
        return await self._run(calls.window(session_id, max_tokens))

    async def create_summary(
        self,
        session_id: str,
        content: str,
        covers_through: str,
        *,
        token_count: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Summary:
        return await self._run(
            calls.create_summary(
                session_id,
                content,
                covers_through,
                token_count=token_count,
                metadata=metadata,
                if_match=if_match,
                if_none_match=if_none_match,
                idempotency_key=idempotency_key,
            )
        )

    async def list_summaries(
        self, session_id: str, *, limit: int = 20, before: str | None = None
    ) -> models.SummaryList:
        return await self._run(calls.list_summaries(session_id, limit=limit, before=before))

    async def iter_summaries(
        self, session_id: str, *, page_size: int = 20
    ) -> AsyncIterator[models.Summary]:
        """Every summary, newest first."""
        before: str | None = None
        while True:
            page = await self._run(calls.list_summaries(session_id, limit=page_size, before=before))
            for summary in page.summaries:
                yield summary
            if not page.has_more or page.next_cursor is None:
                return
            before = page.next_cursor

    async def fork(
        self,
        session_id: str,
        *,
        through_message_id: str | None = None,
        title: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Session:
        return await self._run(
            calls.fork(
                session_id,
                through_message_id=through_message_id,
                title=title,
                idempotency_key=idempotency_key,
            )
        )

    async def rewind(
        self,
        session_id: str,
        to_message_id: str,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> models.Rewound:
        """Keep the messages through `to_message_id`; `msg_0000000000` removes them all."""
        return await self._run(
            calls.rewind(session_id, to_message_id, if_match=if_match, if_none_match=if_none_match)
        )
