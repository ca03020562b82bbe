"""fm-case-service client. Best effort by design: the session service answers
with its own links when the case service is unset, slow, down or wrong."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

logger = logging.getLogger("session_service.case_service")


class CaseServiceClient:
    def __init__(self, base_url: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout)) if base_url else None

    async def cases_for_session(self, user_id: str, session_id: str) -> list[dict[str, Any]] | None:
        """The cases the case service reports for a session, or None when unavailable."""
        if self._client is None or self.base_url is None:
            return None
        url = f"{self.base_url}/api/v1/cases/session/{session_id}"
        try:
            # httpx's timeout bounds each read; a trickling answer needs a total bound.
            async with asyncio.timeout(self.timeout):
                response = await self._client.get(
                    url,
                    params={"page": 1, "page_size": 100},
                    headers=[(b"X-User-ID", user_id.encode("utf-8"))],
                )
            response.raise_for_status()
            payload = response.json()
        except Exception as exc:  # best effort: no answer of theirs may fail ours
            logger.warning("case service unavailable: %s", type(exc).__name__)
            return None
        cases = payload.get("cases") if isinstance(payload, dict) else None
        if not isinstance(cases, list):
            logger.warning("case service answered without a cases list")
            return None
        return [c for c in cases if isinstance(c, dict) and isinstance(c.get("case_id"), str)]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
