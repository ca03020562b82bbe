"""The sessions half of `AsyncSessionClient`: service, sessions, search, cases, administration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from fm_session_client import calls, models
from fm_session_client.calls import UNSET, Call

T = TypeVar("T")


class AsyncSessionsApi:
    """Each method runs one `Call` through the client's `_run` (retries and deadline)."""

    async def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

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
        request = calls.search_request(
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
        request = calls.search_request(
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
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> str | None:
        """The session's ETag if it is live (None: unchanged since `if_none_match`).

        With `if_match`, `PreconditionFailed` unless the session is unchanged since then.
        """
        return await self._run(
            calls.head_session(session_id, if_match=if_match, if_none_match=if_none_match)
        )

    async def get_session(
        self,
        session_id: str,
        *,
        include_messages: bool = False,
        limit: int = 100,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> models.SessionWithMessages | None:
        """The session (None: unchanged since `if_none_match`)."""
        return await self._run(
            calls.get_session(
                session_id,
                include_messages=include_messages,
                limit=limit,
                if_match=if_match,
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
        if_none_match: str | None = None,
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
                if_none_match=if_none_match,
            )
        )

    async def delete_session(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> None:
        return await self._run(
            calls.delete_session(session_id, if_match=if_match, if_none_match=if_none_match)
        )

    async def heartbeat(self, session_id: str) -> models.Heartbeat:
        return await self._run(calls.heartbeat(session_id))

    async def archive(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> models.Session:
        return await self._run(
            calls.archive(session_id, if_match=if_match, if_none_match=if_none_match)
        )

    async def restore(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> models.Session:
        return await self._run(
            calls.restore(session_id, if_match=if_match, if_none_match=if_none_match)
        )

    async def clear_context(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> models.ContextCleanup:
        return await self._run(
            calls.clear_context(session_id, if_match=if_match, if_none_match=if_none_match)
        )

    async def recovery_info(self, session_id: str) -> models.RecoveryInfo:
        return await self._run(calls.recovery_info(session_id))

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
