"""Service settings, read from the environment and an optional `.env` file.

Settings are built once, in `create_app()` or the CLI, never at import time, so
tests can build their own. A bad value stops the process with one line naming
the variable (see `load_settings`).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class RedisMode(StrEnum):
    STANDALONE = "standalone"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


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
    redis_mode: RedisMode = RedisMode.STANDALONE
    redis_sentinel_hosts: Annotated[list[str], NoDecode] = []
    redis_master_set: str = "mymaster"
    redis_sentinel_password: str | None = None
    redis_cluster_nodes: Annotated[list[str], NoDecode] = []
    redis_timeout_seconds: float = Field(1.5, gt=0, le=30)
    redis_max_connections: int = Field(64, ge=1, le=10000)
    redis_min_replicas_ack: int = Field(0, ge=0, le=16)
    redis_replica_ack_timeout_ms: int = Field(500, ge=1, le=60000)
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

    # Operations
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    metrics_enabled: bool = True
    access_log: bool = True

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

    @field_validator("case_service_url", "gateway_shared_secret", "redis_sentinel_password")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value if value else None

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
        ):
            raise ValueError("REDIS_URL or REDIS_CLUSTER_NODES is required when REDIS_MODE=cluster")
        return self

    @property
    def embedded(self) -> bool:
        """True when the service owns its own Redis-compatible server."""
        return self.redis_mode is RedisMode.STANDALONE and self.redis_url is None

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
