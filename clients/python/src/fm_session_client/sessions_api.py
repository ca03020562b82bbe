# Written by clients/python/unasync.py from aio_sessions_api.py: edit that module, then run
# `make client-sync`. tests/client/test_unasync.py fails when this file is stale.
"""The sessions half of `SessionClient`: service, sessions, search, cases, administration."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from fm_session_client import calls, models
from fm_session_client.calls import UNSET, Call

T = TypeVar("T")


class SessionsApi:
    """Each method runs one `Call` through the client's `_run` (retries and deadline)."""

    def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    # ---- service ----

    def service_info(self) -> models.ServiceInfo:
        return self._run(calls.service_info())

    def health(self) -> models.Health:
        return self._run(calls.health())

    def ready(self) -> models.Readiness:
        return self._run(calls.ready())

    def metrics(self) -> str:
        return self._run(calls.metrics())

    # ---- sessions ----

    def create_session(
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
        return self._run(
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

    def resume_or_create(
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
        return self.create_session(
            client_id=client_id,
            title=title,
            session_type=session_type,
            metadata=metadata,
            timeout_minutes=timeout_minutes,
        )

    def list_sessions(
        self,
        *,
        status: Sequence[models.SessionStatus] | None = None,
        include_archived: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> models.SessionList:
        return self._run(
            calls.list_sessions(
                status=status, include_archived=include_archived, limit=limit, offset=offset
            )
        )

    def iter_sessions(
        self,
        *,
        status: Sequence[models.SessionStatus] | None = None,
        include_archived: bool = False,
        page_size: int = 100,
    ) -> Iterator[models.Session]:
        """Every session of the caller, most recent activity first, each exactly once.

        Walks the search cursor rather than list offsets: a session that becomes active
        during the walk would move between offset pages, but not out of a cursor walk.
        """
        yield from self.iter_search(
            status=status, include_archived=include_archived, page_size=page_size
        )

    def delete_all_sessions(self) -> models.DeletedSessions:
        return self._run(calls.delete_all_sessions())

    def search(
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
        return self._run(calls.search(request))

    def iter_search(
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
    ) -> Iterator[models.Session]:
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
            page = self._run(calls.search(request))
            yield from page.sessions
            if page.next_cursor is None:
                return
            request = request.model_copy(update={"cursor": page.next_cursor})

    def statistics(self) -> models.UserStatistics:
        return self._run(calls.statistics())

    def head_session(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> str | None:
        """The session's ETag if it is live (None: unchanged since `if_none_match`).

        With `if_match`, `PreconditionFailed` unless the session is unchanged since then.
        """
        return self._run(
            calls.head_session(session_id, if_match=if_match, if_none_match=if_none_match)
        )

    def get_session(
        self,
        session_id: str,
        *,
        include_messages: bool = False,
        limit: int = 100,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> models.SessionWithMessages | None:
        """The session (None: unchanged since `if_none_match`)."""
        return self._run(
            calls.get_session(
                session_id,
                include_messages=include_messages,
                limit=limit,
                if_match=if_match,
                if_none_match=if_none_match,
            )
        )

    def update(
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
        return self._run(
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

    def delete_session(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> None:
        return self._run(
            calls.delete_session(session_id, if_match=if_match, if_none_match=if_none_match)
        )

    def heartbeat(self, session_id: str) -> models.Heartbeat:
        return self._run(calls.heartbeat(session_id))

    def archive(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> models.Session:
        return self._run(calls.archive(session_id, if_match=if_match, if_none_match=if_none_match))

    def restore(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> models.Session:
        return self._run(calls.restore(session_id, if_match=if_match, if_none_match=if_none_match))

    def clear_context(
        self, session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
    ) -> models.ContextCleanup:
        return self._run(
            calls.clear_context(session_id, if_match=if_match, if_none_match=if_none_match)
        )

    def recovery_info(self, session_id: str) -> models.RecoveryInfo:
        return self._run(calls.recovery_info(session_id))

    # ---- cases ----

    def link_case(self, session_id: str, case_id: str) -> models.CaseLinkResult:
        return self._run(calls.link_case(session_id, case_id))

    def list_cases(self, session_id: str) -> models.CaseList:
        return self._run(calls.list_cases(session_id))

    def unlink_case(self, session_id: str, case_id: str) -> None:
        return self._run(calls.unlink_case(session_id, case_id))

    # ---- administration ----

    def cleanup(self) -> models.CleanupReport:
        return self._run(calls.cleanup())

    def erase_user(self, user_id: str) -> models.ErasureReport:
        return self._run(calls.erase_user(user_id))
