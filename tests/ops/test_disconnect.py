"""A client that leaves before its body is complete: nothing runs, nothing answers,
and the access line says 499 (client closed request), not a 500 that pages someone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ClientFactory


async def test_a_disconnect_mid_body_runs_nothing_and_logs_499(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with make_client(log_format="json", log_level="INFO") as client:
        app: Any = client.app  # type: ignore[attr-defined]
        capsys.readouterr()
        messages = iter(
            [
                {"type": "http.request", "body": b'{"title": "half', "more_body": True},
                {"type": "http.disconnect"},
            ]
        )
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/api/v1/sessions",
            "raw_path": b"/api/v1/sessions", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"t"), (b"x-user-id", b"u1"),
                        (b"content-type", b"application/json"), (b"content-length", b"100")],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "app": app,
        }  # fmt: skip
        await app(scope, receive, send)
        listed = await client.get("/api/v1/sessions", headers={"X-User-ID": "u1"})

    assert sent == []
    assert listed.json()["total"] == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    access = [e for e in lines if e["logger"] == "session_service.access"]
    assert access[0]["status"] == 499
    assert access[0]["route"] == "unmatched"
