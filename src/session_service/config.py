"""Service settings, read from the environment and an optional `.env` file.

Settings are built once, in `create_app()` or the CLI, never at import time, so
tests can build their own. A bad value stops the process with one line naming
the variable (see `load_settings`).
"""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class RedisMode(StrEnum):
    STANDALONE = "standalone"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


#: The platform's separate connection settings (FaultMaven's compose, the original
#: service); REDIS_URL, when also given, wins over all of them.
REDIS_PARTS = (
    "redis_host",
    "redis_port",
    "redis_db",
    "redis_username",
    "redis_password",
    "redis_ssl",
)
#: Settings that an empty value leaves unset (`Settings._empty_is_none`).
_EMPTY_IS_UNSET = ("case_service_url", "gateway_shared_secret", "redis_sentinel_password")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[?[0-9A-Fa-f:.]+\]?)$")


class SessionLimitPolicy(StrEnum):
    """What a create does when the user already has MAX_SESSIONS_PER_USER sessions."""

    REJECT = "reject"  # 409 session_limit_reached
    EVICT_OLDEST = "evict_oldest"  # delete the least recently active non-archived ones


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Service identity (seed table)
    service_name: str = "fm-session-service"
    service_version: str = "1.0.0"
    environment: str = "development"
    host: str = "0.0.0.0"
    port: int = Field(8001, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: LogFormat | None = None
    cors_origins: Annotated[list[str], NoDecode] = ["*"]

    # Storage
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int | None = Field(None, ge=1, le=65535)
    redis_db: int | None = Field(None, ge=0, le=1_000_000)
    redis_username: str | None = None
    redis_password: str | None = None
    redis_ssl: bool | None = None
    redis_mode: RedisMode = RedisMode.STANDALONE
    redis_sentinel_hosts: Annotated[list[str], NoDecode] = []
    redis_master_set: str = "mymaster"
    redis_sentinel_password: str | None = None
    redis_cluster_nodes: Annotated[list[str], NoDecode] = []
    redis_timeout_seconds: float = Field(1.5, gt=0, le=30)
    redis_connect_timeout_seconds: float = Field(1.0, gt=0, le=30)
    redis_max_connections: int = Field(64, ge=1, le=10000)
    redis_min_replicas_ack: int = Field(0, ge=0, le=16)
    redis_replica_ack_timeout_ms: int = Field(500, ge=1, le=60000)
    redis_confirmed_reads: bool = False
    redis_tls_ca_certs: str | None = None
    redis_tls_certfile: str | None = None
    redis_tls_keyfile: str | None = None
    redis_tls_verify: bool = True
    key_prefix: str = Field("fms", pattern=r"^[a-z][a-z0-9_]{0,15}$")
    data_dir: Path = Path("./data")
    embedded_appendfsync: str = Field("everysec", pattern=r"^(always|everysec|no)$")

    # Session lifecycle
    default_session_ttl: int = Field(86400, gt=0)
    session_min_timeout_minutes: int = Field(1, ge=1)
    session_max_timeout_minutes: int = Field(10080, ge=1)
    archived_session_ttl: int = Field(7776000, ge=0)
    max_sessions_per_user: int = Field(1000, ge=1)
    session_limit_policy: SessionLimitPolicy = SessionLimitPolicy.REJECT
    max_cases_per_session: int = Field(100, ge=1)
    cleanup_interval_seconds: int = Field(300, ge=0)

    # Messages
    max_message_bytes: int = Field(65536, ge=1)
    max_messages_per_session: int = Field(100000, ge=1, le=9_999_999_999)
    idempotency_ttl_seconds: int = Field(86400, ge=1)

    # Case service integration
    case_service_url: str | None = None
    case_service_timeout: float = Field(2.0, gt=0, le=60)

    # Security and robustness
    gateway_shared_secret: str | None = None
    max_request_bytes: int = Field(1_048_576, ge=1024)
    request_body_timeout: float = Field(30.0, gt=0)
    rate_limit_per_minute: int = Field(0, ge=0)

    # Change feed (GET /api/v1/sessions/{id}/events)
    events_heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    max_watchers_per_user: int = Field(16, ge=1)
    max_watchers_per_worker: int = Field(4096, ge=1)

    # Operations
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    metrics_enabled: bool = True
    fast_path: bool = True
    access_log: bool = True

    @field_validator("session_limit_policy", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins", "redis_sentinel_hosts", "redis_cluster_nodes", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("redis_sentinel_hosts", "redis_cluster_nodes")
    @classmethod
    def _host_port(cls, value: list[str]) -> list[str]:
        for item in value:
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port, got {item!r}")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator(*_EMPTY_IS_UNSET, *REDIS_PARTS, mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # `REDIS_PASSWORD=` in a platform .env means "not set", as it did for the original.
        return None if value == "" else value

    @field_validator("redis_host")
    @classmethod
    def _redis_host(cls, value: str | None) -> str | None:
        if value is not None and not _HOST_RE.fullmatch(value.strip()):
            raise ValueError("must be a host name or an IP address (a URL goes in REDIS_URL)")
        return value.strip() if value is not None else None

    @field_validator("case_service_url")
    @classmethod
    def _case_service_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.session_min_timeout_minutes > self.session_max_timeout_minutes:
            raise ValueError(
                "SESSION_MIN_TIMEOUT_MINUTES must not exceed SESSION_MAX_TIMEOUT_MINUTES"
            )
        if self.redis_mode is RedisMode.SENTINEL and not self.redis_sentinel_hosts:
            raise ValueError("REDIS_SENTINEL_HOSTS is required when REDIS_MODE=sentinel")
        if (
            self.redis_mode is RedisMode.CLUSTER
            and not self.redis_url
            and not self.redis_cluster_nodes
            and not self.redis_host
        ):
            raise ValueError(
                "REDIS_URL, REDIS_HOST or REDIS_CLUSTER_NODES is required when REDIS_MODE=cluster"
            )
        if self.redis_confirmed_reads and self.redis_min_replicas_ack == 0:
            raise ValueError(
                "REDIS_CONFIRMED_READS needs REDIS_MIN_REPLICAS_ACK of 1 or more (the replicas "
                "an answer waits for)"
            )
        if self.redis_mode is RedisMode.CLUSTER and not self.redis_url and self.redis_db:
            raise ValueError("REDIS_DB must be 0 when REDIS_MODE=cluster (a Cluster has one db)")
        if self.redis_mode is RedisMode.STANDALONE and not self.redis_url and not self.redis_host:
            # A lone REDIS_PORT or REDIS_PASSWORD names no server: never guess one,
            # and never fall back to the embedded store with it.
            given = [name.upper() for name in REDIS_PARTS if getattr(self, name) is not None]
            if given:
                raise ValueError(
                    f"{given[0]} is set but neither REDIS_HOST nor REDIS_URL names the server"
                )
            for name in ("redis_sentinel_hosts", "redis_cluster_nodes", "redis_sentinel_password"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name.upper()} is set but REDIS_MODE is standalone (set REDIS_MODE)"
                    )
        return self

    @property
    def embedded(self) -> bool:
        """True when no Redis setting is given, so the service owns its own server."""
        return (
            self.redis_mode is RedisMode.STANDALONE
            and self.redis_url is None
            and self.redis_host is None
        )

    @property
    def redis_source(self) -> str:
        """Which settings name the store, for the start log."""
        if self.redis_url is not None:
            return "REDIS_URL"
        if self.embedded:
            return "embedded (no REDIS_URL or REDIS_HOST)"
        ignored = self.ignored_redis_settings
        given = [name.upper() for name in REDIS_PARTS if getattr(self, name) is not None]
        names = [name for name in given if name not in ignored]
        if self.redis_mode is RedisMode.SENTINEL:
            names.insert(0, "REDIS_SENTINEL_HOSTS")
        elif self.redis_mode is RedisMode.CLUSTER and self.redis_cluster_nodes:
            names.insert(0, "REDIS_CLUSTER_NODES")
        return "/".join(names)

    @property
    def ignored_redis_settings(self) -> list[str]:
        """Separate settings that REDIS_URL overrides (or that Sentinel does not use)."""
        if self.redis_url is not None:
            return [name.upper() for name in REDIS_PARTS if getattr(self, name) is not None]
        if self.redis_mode is RedisMode.SENTINEL:
            return [n.upper() for n in ("redis_host", "redis_port") if getattr(self, n)]
        return []

    @property
    def redis_connection_url(self) -> str | None:
        """REDIS_URL, else a URL built from REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_USERNAME,
        REDIS_PASSWORD and REDIS_SSL; None for the embedded store.

        In Sentinel mode only its credentials, db and scheme are used (the master
        comes from the sentinels); in Cluster mode it is the seed node unless
        REDIS_CLUSTER_NODES is given.
        """
        if self.redis_url is not None:
            return self.redis_url
        if self.embedded:
            return None
        scheme = "rediss" if self.redis_ssl else "redis"
        userinfo = ""
        if self.redis_username is not None or self.redis_password is not None:
            userinfo = quote(self.redis_username or "", safe="")
            if self.redis_password is not None:
                userinfo += ":" + quote(self.redis_password, safe="")
            userinfo += "@"
        host = self.redis_host or "unused"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{scheme}://{userinfo}{host}:{self.redis_port or 6379}/{self.redis_db or 0}"

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.TEXT if self.environment == "development" else LogFormat.JSON

    @property
    def wildcard_cors(self) -> bool:
        return "*" in self.cors_origins


def load_settings(**overrides: Any) -> Settings:
    """Build settings or exit with one line naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        name = field.upper() if first["loc"] else "configuration"
        print(f"fm-session-service: invalid {name}: {first['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
