"""HEAD over a real socket (issue 20, item 10): the server sends the GET's status and
headers and no body bytes, so the next response on the same connection reads intact;
the access line names HEAD and the route template."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.helpers import API
from tests.ops.service import running_service

USER = {"X-User-ID": "u-head"}


def test_head_then_get_on_one_connection(tmp_path: Path, redis_url: str) -> None:
    with running_service(tmp_path, "serve", REDIS_URL=redis_url, LOG_FORMAT="json") as service:
        with httpx.Client(base_url=service.url, headers=USER, timeout=10) as client:
            sid = client.post(API, json={"title": "head"}).json()["session_id"]
            client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "x" * 5000})
            path = f"{API}/{sid}/messages"

            get = client.get(path)
            head = client.head(path, headers={"X-Request-ID": "rid-head"})
            after = client.get(path)  # the same keep-alive connection

        service.terminate()
        assert service.wait(timeout=15) == 0
    assert head.status_code == get.status_code == after.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] != "0"
    assert head.headers["etag"] == get.headers["etag"]
    assert after.json() == get.json()
    lines = [json.loads(line) for line in service.stderr().splitlines() if line.startswith("{")]
    access = [e for e in lines if e.get("request_id") == "rid-head"]
    assert len(access) == 1
    assert (
        "HEAD" in access[0]["msg"] and "/api/v1/sessions/{session_id}/messages" in access[0]["msg"]
    )
