"""The start-up check that a given Redis setting is usable.

A server that refuses the credentials or the db number will refuse them on
every request, so that is a configuration error: the process stops with one
line naming the setting. A server that does not answer yet is an outage: the
service starts, /ready and the API answer 503 until it does.
"""

from __future__ import annotations

import asyncio

from redis import exceptions as rx

from session_service.config import Settings
from session_service.store.connection.client import build_client

#: Replies (and redis-py messages) that mean the credentials are wrong or missing.
AUTH_REFUSED = (
    "NOAUTH",
    "WRONGPASS",
    "invalid username-password",
    "invalid password",
    "without any password configured",
    "Authentication required",
)
DB_REFUSED = ("DB index is out of range", "invalid DB index")
#: TLS handshakes that fail the same way on every attempt: an untrusted or mismatched
#: certificate, or TLS spoken to a server that does not speak it.
TLS_REFUSED = (
    "CERTIFICATE_VERIFY_FAILED",
    "WRONG_VERSION_NUMBER",
    "wrong version number",
    "record layer failure",
    "UNEXPECTED_EOF_WHILE_READING",
)


def _credential_settings(settings: Settings) -> str:
    if settings.redis_url is not None:
        return "REDIS_URL"
    if settings.redis_username is not None:
        return "REDIS_USERNAME/REDIS_PASSWORD"
    return "REDIS_PASSWORD"


def classify(settings: Settings, exc: BaseException) -> str | None:
    """The one-line problem when `exc` means a setting is wrong, else None (an outage)."""
    text = str(exc)
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError) or any(
        marker in text for marker in AUTH_REFUSED
    ):
        name = _credential_settings(settings)
        if name == "REDIS_PASSWORD" and settings.redis_password is None:
            return (
                f"invalid REDIS_PASSWORD: the server requires a password and none is set ({text})"
            )
        return f"invalid {name}: the server refused the credentials ({text})"
    if any(marker in text for marker in DB_REFUSED):
        name = "REDIS_URL" if settings.redis_url is not None else "REDIS_DB"
        return f"invalid {name}: the server has no such database ({text})"
    if any(marker in text for marker in TLS_REFUSED):
        name = "REDIS_URL" if settings.redis_url is not None else "REDIS_SSL"
        return f"invalid {name} (or REDIS_TLS_*): the TLS handshake failed ({text})"
    return None


async def unusable_setting(settings: Settings, url: str | None) -> tuple[str | None, str | None]:
    """(problem, outage): a line naming a wrong setting, or why the server is not reachable."""
    client = build_client(settings, url)
    try:
        async with asyncio.timeout(settings.redis_timeout_seconds * 2 + 1):
            await client.ping()
    except (rx.RedisError, OSError, TimeoutError) as exc:
        problem = classify(settings, exc)
        return problem, None if problem else f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None, None
