"""The asyncio client: `SessionClient`'s methods (client.py), awaited; iterators are async.

Every method is one `Call` from calls.py run through `_run`, which owns retries: the
same request (same Idempotency-Key) again after a transient failure, with backoff,
until the operation's deadline.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from fm_session_client import calls, models
from fm_session_client.base import Attempts, Settings, answer, build_request, gave_up, is_failure
from fm_session_client.calls import UNSET, Call, MessageInput
from fm_session_client.client import search_request
from fm_session_client.retry import RetryPolicy

T = TypeVar("T")


class AsyncSessionClient:
    """An asyncio client of the session service, for one user (or none, for the service endpoints).

    `timeout` and `deadline` override the retry policy's read timeout per attempt and its
    overall deadline per operation; `transport` is for tests and custom networking.
    """

    def __init__(
        self,
        base_url: str,
        *,
        user_id: str | None = None,
        gateway_token: str | None = None,
        user_email: str | None = None,
        user_roles: Sequence[str] | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        policy = retry or RetryPolicy()
        if timeout is not None:
            policy = RetryPolicy(**{**policy.__dict__, "read_timeout": timeout})
        if deadline is not None:
            policy = RetryPolicy(**{**policy.__dict__, "deadline": deadline})
        self.settings = Settings(
            base_url=base_url,
            user_id=user_id,
            gateway_token=gateway_token,
            user_email=user_email,
            user_roles=user_roles,
            retry=policy,
            headers=dict(headers or {}),
        )
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=self.settings.identity_headers(), transport=transport
        )
        self._rng = random.Random()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSessionClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, call: Call[T]) -> T:
        attempts = Attempts(call, self.settings.retry, self._rng)
        while True:
            failure: httpx.Response | httpx.TransportError
            try:
                response = await self._http.send(
                    build_request(self._http, call, attempts.timeout())
                )
                await response.aread()
            except httpx.TransportError as error:
                failure = error
            else:
                if not is_failure(call, response):
                    return answer(call, response)
                failure = response
            wait = attempts.next_wait(failure)
            if wait is None:
                raise gave_up(failure, call)
            await asyncio.sleep(wait)

    # ---- service ----

    async def service_info(self) -> models.ServiceInfo:
        return await self._run(calls.service_info())

    async def health(self) -> models.Health:
        return await self._run(calls.health())

    async def ready(self) -> models.Readiness:
        return await self._run(calls.ready())

    async def metrics(self) -> str:
        return await self._run(calls.metrics())

    # ---- sessions ----

    async def create_session(
        self,
        *,
        title: str | None = None,
        description: str | None = None,
        session_type: str | None = None,
        client_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_minutes: int | None = None,
        idempotency_key: str | None = None,
    ) -> models.CreatedSession:
        """Create a session (or, with a `client_id` that has a live one, resume it)."""
        return await self._run(
            calls.create_session(
                title=title,
                description=description,
                session_type=session_type,
                client_id=client_id,
                metadata=metadata,
                timeout_minutes=timeout_minutes,
                idempotency_key=idempotency_key,
            )
        )

    async def resume_or_create(
        self,
        client_id: str,
        *,
        title: str | None = None,
        session_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_minutes: int | None = None,
    ) -> models.CreatedSession:
        """The browser extension's flow: this client's live session, or a new one.

        `session_resumed` on the answer says which. Call it again whenever a call on the
        session answers `SessionNotFound` (it expired): a new session comes back.
        """
        return await self.create_session(
            client_id=client_id,
            title=title,
            session_type=session_type,
            metadata=metadata,
            timeout_minutes=timeout_minutes,
        )

    async def list_sessions(
        self,
        *,
        status: Sequence[models.SessionStatus] | None = None,
        include_archived: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> models.SessionList:
        return await self._run(
            calls.list_sessions(
                status=status, include_archived=include_archived, limit=limit, offset=offset
            )
        )

    async def iter_sessions(
        self,
        *,
        status: Sequence[models.SessionStatus] | None = None,
        include_archived: bool = False,
        page_size: int = 100,
    ) -> AsyncIterator[models.Session]:
        """Every session of the caller, most recent activity first, each exactly once.

        Walks the search cursor rather than list offsets: a session that becomes active
        during the walk would move between offset pages, but not out of a cursor walk.
        """
        async for session in self.iter_search(
            status=status, include_archived=include_archived, page_size=page_size
        ):
            yield session

    async def delete_all_sessions(self) -> models.DeletedSessions:
        return await self._run(calls.delete_all_sessions())

    async def search(
        self,
        *,
        status: models.SessionStatus | Sequence[models.SessionStatus] | None = None,
        query: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        session_type: str | None = None,
        created_after: str | datetime | None = None,
        created_before: str | datetime | None = None,
        updated_after: str | datetime | None = None,
        updated_before: str | datetime | None = None,
        include_archived: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> models.SearchResult:
        request = search_request(
            status=status,
            query=query,
            metadata=metadata,
            session_type=session_type,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
            include_archived=include_archived,
            limit=limit,
            cursor=cursor,
        )
        return await self._run(calls.search(request))

    async def iter_search(
        self,
        *,
        status: models.SessionStatus | Sequence[models.SessionStatus] | None = None,
        query: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        session_type: str | None = None,
        created_after: str | datetime | None = None,
        created_before: str | datetime | None = None,
        updated_after: str | datetime | None = None,
        updated_before: str | datetime | None = None,
        include_archived: bool = False,
        page_size: int = 100,
    ) -> AsyncIterator[models.Session]:
        """Every match, page after page, following `next_cursor`."""
        request = search_request(
            status=status,
            query=query,
            metadata=metadata,
            session_type=session_type,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
            include_archived=include_archived,
            limit=page_size,
        )
        while True:
            page = await self._run(calls.search(request))
            for session in page.sessions:
                yield session
            if page.next_cursor is None:
                return
            request = request.model_copy(update={"cursor": page.next_cursor})

    async def statistics(self) -> models.UserStatistics:
        return await self._run(calls.statistics())

    async def head_session(
        self, session_id: str, *, if_none_match: str | None = None
    ) -> str | None:
        """The session's ETag if it is live (None: unchanged since `if_none_match`)."""
        return await self._run(calls.head_session(session_id, if_none_match=if_none_match))

    async def get_session(
        self,
        session_id: str,
        *,
        include_messages: bool = False,
        limit: int = 100,
        if_none_match: str | None = None,
    ) -> models.SessionWithMessages | None:
        """The session (None: unchanged since `if_none_match`)."""
        return await self._run(
            calls.get_session(
                session_id,
                include_messages=include_messages,
                limit=limit,
                if_none_match=if_none_match,
            )
        )

    async def update(
        self,
        session_id: str,
        *,
        title: str | None = UNSET,
        description: str | None = UNSET,
        status: models.SessionStatus | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timeout_minutes: int | None = None,
        if_match: str | None = None,
    ) -> models.Session:
        """Change the fields given (`title=None` clears it); with `if_match`, only if unchanged."""
        return await self._run(
            calls.update(
                session_id,
                title=title,
                description=description,
                status=status,
                metadata=metadata,
                context=context,
                timeout_minutes=timeout_minutes,
                if_match=if_match,
            )
        )

    async def delete_session(self, session_id: str, *, if_match: str | None = None) -> None:
        return await self._run(calls.delete_session(session_id, if_match=if_match))

    async def heartbeat(self, session_id: str) -> models.Heartbeat:
        return await self._run(calls.heartbeat(session_id))

    async def archive(self, session_id: str, *, if_match: str | None = None) -> models.Session:
        return await self._run(calls.archive(session_id, if_match=if_match))

    async def restore(self, session_id: str, *, if_match: str | None = None) -> models.Session:
        return await self._run(calls.restore(session_id, if_match=if_match))

    async def clear_context(
        self, session_id: str, *, if_match: str | None = None
    ) -> models.ContextCleanup:
        return await self._run(calls.clear_context(session_id, if_match=if_match))

    async def recovery_info(self, session_id: str) -> models.RecoveryInfo:
        return await self._run(calls.recovery_info(session_id))

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
                idempotency_key=idempotency_key,
            )
        )

    async def append_batch(
        self,
        session_id: str,
        messages: Iterable[MessageInput],
        *,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.AppendedBatch:
        """Append 1-64 messages all or nothing, exactly once (one key for the batch)."""
        return await self._run(
            calls.append_batch(
                session_id, messages, if_match=if_match, idempotency_key=idempotency_key
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
        self, session_id: str, to_message_id: str, *, if_match: str | None = None
    ) -> models.Rewound:
        """Keep the messages through `to_message_id`; `msg_0000000000` removes them all."""
        return await self._run(calls.rewind(session_id, to_message_id, if_match=if_match))

    # ---- cases ----

    async def link_case(self, session_id: str, case_id: str) -> models.CaseLinkResult:
        return await self._run(calls.link_case(session_id, case_id))

    async def list_cases(self, session_id: str) -> models.CaseList:
        return await self._run(calls.list_cases(session_id))

    async def unlink_case(self, session_id: str, case_id: str) -> None:
        return await self._run(calls.unlink_case(session_id, case_id))

    # ---- administration ----

    async def cleanup(self) -> models.CleanupReport:
        return await self._run(calls.cleanup())

    async def erase_user(self, user_id: str) -> models.ErasureReport:
        return await self._run(calls.erase_user(user_id))
