"""Configuration from the environment (``EH_`` prefix), built by a factory, never at import."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PLACEHOLDER", "Environment", "Settings", "load_settings"]

PLACEHOLDER = "change-me"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every setting the hub reads. Secrets are ``SecretStr`` and never logged."""

    model_config = SettingsConfigDict(env_prefix="EH_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(default=Path("var"), description="Embedded database and dev secrets.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means the embedded SQLite file in data_dir."
    )
    broker_url: str = Field(default="memory://", description="kombu URL, e.g. amqp://...")
    bus_prefix: str = Field(
        default="eh", pattern=r"^[a-z][a-z0-9_.-]{0,30}$", description="Exchange/queue name prefix."
    )
    router_partitions: int = Field(default=4, ge=1, le=256)
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str = Field(default="", description="How agencies reach this hub.")

    admin_token: SecretStr = SecretStr(PLACEHOLDER)
    data_keys: SecretStr = Field(
        default=SecretStr(PLACEHOLDER),
        description="At-rest key ring 'kid:base64key,...'; the active key is data_key_active.",
    )
    data_key_active: str = ""
    pseudonym_key: SecretStr = SecretStr(PLACEHOLDER)
    audit_signing_key: SecretStr = SecretStr(PLACEHOLDER)

    allow_loopback_callbacks: bool = Field(
        default=False, description="Let callbacks target loopback (development and test only)."
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "escalation-hub@localhost"

    delivery_attempts: int = Field(default=6, ge=1, le=50)
    delivery_backoff_initial: float = Field(default=0.5, gt=0)
    delivery_backoff_max: float = Field(default=60.0, gt=0)
    delivery_timeout: float = Field(default=10.0, gt=0)
    delivery_concurrency: int = Field(default=8, ge=1, le=256)
    scheduler_interval: float = Field(default=5.0, gt=0)
    relay_interval: float = Field(default=0.2, gt=0)
    broker_timeout: float = Field(default=5.0, gt=0)

    max_body_bytes: int = 1_048_576
    max_batch: int = 100

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def embedded(self) -> bool:
        return self.broker_url.startswith("memory://")

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'escalation-hub.sqlite3'}"

    @model_validator(mode="after")
    def _refuse_placeholders_outside_development(self) -> Self:
        if self.environment is Environment.DEVELOPMENT:
            return self
        for name in ("admin_token", "data_keys", "pseudonym_key", "audit_signing_key"):
            if getattr(self, name).get_secret_value() in ("", PLACEHOLDER):
                raise ValueError(
                    f"EH_{name.upper()} must be set to a real secret when EH_ENVIRONMENT is "
                    f"{self.environment.value}; see README 'Configuration'"
                )
        if self.allow_loopback_callbacks and self.is_production:
            raise ValueError("EH_ALLOW_LOOPBACK_CALLBACKS is refused in production")
        return self


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
