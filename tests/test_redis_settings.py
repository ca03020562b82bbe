"""The platform's separate Redis settings (issue 12, item 1): REDIS_HOST, REDIS_PORT,
REDIS_DB, REDIS_USERNAME, REDIS_PASSWORD and REDIS_SSL, as an alternative to
REDIS_URL. Sessions land in the server they name; a setting that is given but
unusable stops the process, never a fallback to the embedded store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url

from session_service.config import Settings, load_settings
from session_service.store.connection.client import build_client
from session_service.store.keys import Keys
from session_service.store.probe import unusable_setting
from tests.conftest import create_session, running_app
from tests.servers import free_port, redis_server

PASSWORD = "p@ss:w/rd %1"  # every character a URL would need quoted


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, cleanup_interval_seconds=0, log_level="WARNING", **values)


def clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_the_separate_settings_build_the_connection_url() -> None:
    built = settings(
        redis_host="redis", redis_port=6380, redis_db=2, redis_username="app",
        redis_password=PASSWORD, redis_ssl=True,
    )  # fmt: skip
    url = built.redis_connection_url
    assert url is not None and url.startswith("rediss://")
    parsed = parse_url(url)
    assert (parsed["host"], parsed["port"], parsed["db"]) == ("redis", 6380, 2)
    assert (parsed["username"], parsed["password"]) == ("app", PASSWORD)
    assert built.embedded is False
    assert (
        built.redis_source
        == "REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_USERNAME/REDIS_PASSWORD/REDIS_SSL"
    )


def test_host_alone_means_port_6379_db_0_without_tls() -> None:
    assert settings(redis_host="redis").redis_connection_url == "redis://redis:6379/0"


def test_redis_url_wins_and_the_others_are_reported_as_ignored() -> None:
    built = settings(redis_url="redis://a:6379/0", redis_host="b", redis_port=1)
    assert built.redis_connection_url == "redis://a:6379/0"
    assert built.redis_source == "REDIS_URL"
    assert built.ignored_redis_settings == ["REDIS_HOST", "REDIS_PORT"]


def test_empty_values_mean_unset_so_the_embedded_store_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_env(monkeypatch)
    for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD", "REDIS_SSL"):
        monkeypatch.setenv(name, "")
    loaded = load_settings(_env_file=None)
    assert loaded.embedded is True
    assert loaded.redis_connection_url is None


def test_sentinel_mode_takes_credentials_and_db_from_the_separate_settings() -> None:
    built = settings(
        redis_mode="sentinel", redis_sentinel_hosts="s1:26379", redis_password=PASSWORD,
        redis_db=1, redis_host="ignored",
    )  # fmt: skip
    parsed = parse_url(built.redis_connection_url or "")
    assert (parsed["password"], parsed["db"]) == (PASSWORD, 1)
    assert built.ignored_redis_settings == ["REDIS_HOST"]
    assert built.redis_source == "REDIS_SENTINEL_HOSTS/REDIS_DB/REDIS_PASSWORD"


def test_redis_ssl_in_sentinel_mode_asks_for_tls() -> None:
    # TLS to the sentinels and their master (tests/topology/test_sentinel_tls.py).
    built = settings(redis_mode="sentinel", redis_sentinel_hosts="s1:26379", redis_ssl=True)
    assert (built.redis_connection_url or "").startswith("rediss://")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_HOST": "redis", "REDIS_PORT": "abc"}, "REDIS_PORT"),
        ({"REDIS_HOST": "redis", "REDIS_PORT": "0"}, "REDIS_PORT"),
        ({"REDIS_HOST": "redis", "REDIS_DB": "-1"}, "REDIS_DB"),
        ({"REDIS_HOST": "redis", "REDIS_SSL": "maybe"}, "REDIS_SSL"),
        ({"REDIS_HOST": "redis://redis:6379"}, "REDIS_HOST"),
        ({"REDIS_HOST": "two words"}, "REDIS_HOST"),
        ({"REDIS_PORT": "6379"}, "REDIS_PORT"),
        ({"REDIS_PASSWORD": "secret"}, "REDIS_PASSWORD"),
        ({"REDIS_SENTINEL_HOSTS": "s1:26379"}, "REDIS_SENTINEL_HOSTS"),
        ({"REDIS_CLUSTER_NODES": "n1:6379"}, "REDIS_CLUSTER_NODES"),
        ({"REDIS_MODE": "cluster", "REDIS_HOST": "redis", "REDIS_DB": "1"}, "REDIS_DB"),
    ],
)
def test_an_unusable_setting_exits_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    named: str,
) -> None:
    clear_env(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        load_settings(_env_file=None)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert named in err


async def _stored_title(url: str, user_id: str, session_id: str, **auth: Any) -> str | None:
    async with Redis.from_url(url, decode_responses=True, **auth) as raw:
        title: str | None = await raw.hget(Keys("fms").session(user_id, session_id), "t")
        return title


async def test_sessions_land_in_the_server_named_by_host_port_password_and_db(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path / "redis", "--requirepass", PASSWORD) as server:
        chosen = settings(
            redis_host="127.0.0.1", redis_port=server.port, redis_password=PASSWORD, redis_db=3
        )
        async with running_app(chosen) as client:
            session = await create_session(client, "u-host", title="on the platform's redis")
            listed = await client.get("/api/v1/sessions", headers={"X-User-ID": "u-host"})
        assert [s["session_id"] for s in listed.json()["sessions"]] == [session["session_id"]]
        base = f"redis://127.0.0.1:{server.port}"
        sid = session["session_id"]
        title = await _stored_title(f"{base}/3", "u-host", sid, password=PASSWORD)
        assert title == "on the platform's redis"
        async with Redis.from_url(f"{base}/0", password=PASSWORD) as db0:
            assert await db0.dbsize() == 0


async def test_an_acl_user_connects_with_redis_username(tmp_path: Path) -> None:
    acl = ("--user", "default", "off", "--user", "fm", "on", ">fm-secret", "~*", "&*", "+@all")
    with redis_server(tmp_path / "redis", *acl) as server:
        chosen = settings(
            redis_host="127.0.0.1", redis_port=server.port, redis_username="fm",
            redis_password="fm-secret",
        )  # fmt: skip
        async with running_app(chosen) as client:
            session = await create_session(client, "u-acl", title="as fm")
        url = f"redis://127.0.0.1:{server.port}/0"
        title = await _stored_title(
            url, "u-acl", session["session_id"], username="fm", password="fm-secret"
        )
        assert title == "as fm"


async def test_refused_credentials_and_db_are_named_an_unreachable_server_is_not(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path / "redis", "--requirepass", PASSWORD) as server:
        host = {"redis_host": "127.0.0.1", "redis_port": server.port}
        wrong = settings(**host, redis_password="nope")
        problem, _ = await unusable_setting(wrong, wrong.redis_connection_url)
        assert problem is not None and problem.startswith("invalid REDIS_PASSWORD")
        missing = settings(**host, redis_db=0)
        problem, _ = await unusable_setting(missing, missing.redis_connection_url)
        assert problem is not None and "requires a password" in problem
        by_url = settings(redis_url=f"redis://:nope@127.0.0.1:{server.port}/0")
        problem, _ = await unusable_setting(by_url, by_url.redis_connection_url)
        assert problem is not None and problem.startswith("invalid REDIS_URL")
        no_db = settings(**host, redis_password=PASSWORD, redis_db=999)
        problem, _ = await unusable_setting(no_db, no_db.redis_connection_url)
        assert problem is not None and problem.startswith("invalid REDIS_DB")
        right = settings(**host, redis_password=PASSWORD)
        assert await unusable_setting(right, right.redis_connection_url) == (None, None)
    closed = settings(redis_host="127.0.0.1", redis_port=free_port())
    problem, outage = await unusable_setting(closed, closed.redis_connection_url)
    assert problem is None and outage is not None


@pytest.mark.parametrize(
    ("values", "connect_timeout"),
    [
        ({}, 1.0),  # the default: an outage is noticed within a second
        ({"REDIS_CONNECT_TIMEOUT_SECONDS": "4"}, 1.5),  # never above REDIS_TIMEOUT_SECONDS
        ({"REDIS_CONNECT_TIMEOUT_SECONDS": "4", "REDIS_TIMEOUT_SECONDS": "5"}, 4.0),
        ({"REDIS_CONNECT_TIMEOUT_SECONDS": "0.25"}, 0.25),
    ],
)
async def test_the_connect_timeout_is_its_setting_within_the_call_timeout(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], connect_timeout: float
) -> None:
    for name, value in {"REDIS_URL": "redis://127.0.0.1:1/0", **values}.items():
        monkeypatch.setenv(name, value)
    client = build_client(load_settings(), load_settings().redis_connection_url)
    try:
        assert client.connection_pool.connection_kwargs["socket_connect_timeout"] == connect_timeout
    finally:
        await client.aclose()


def test_a_connect_timeout_of_zero_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_CONNECT_TIMEOUT_SECONDS", "0")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert stopped.value.code == 2
    assert "invalid REDIS_CONNECT_TIMEOUT_SECONDS" in capsys.readouterr().err
