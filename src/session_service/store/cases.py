"""Links between a session and fm-case-service cases."""

from __future__ import annotations

from session_service import errors
from session_service.store.base import StoreBase
from session_service.store.codec import (
    iso,
)
from session_service.store.protocol import LinkCaseArgs, UnlinkCaseArgs


class CaseOps(StoreBase):
    async def link_case(self, user_id: str, session_id: str, case_id: str) -> str:
        args = LinkCaseArgs(
            sid=session_id, case_id=case_id, max_cases=self.limits.max_cases_per_session
        )
        reply = await self._write(self.scripts.link_case, user_id, args)
        return iso(reply.linked_ms)

    async def unlink_case(self, user_id: str, session_id: str, case_id: str) -> bool:
        reply = await self._write(
            self.scripts.unlink_case, user_id, UnlinkCaseArgs(sid=session_id, case_id=case_id)
        )
        return reply.removed

    async def linked_cases(self, user_id: str, session_id: str) -> list[tuple[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.keys.session(user_id, session_id))
        pipe.zrange(self.keys.cases(user_id, session_id), 0, -1, withscores=True)
        exists, rows = await pipe.execute()
        if not exists:
            raise errors.SessionNotFound()
        return [(case_id, iso(int(score))) for case_id, score in rows]
