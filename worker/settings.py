"""One typed settings object for every process; environment variables are prefixed ``SGR_``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.domain.events import TimeLimits
from worker.domain.rules import RuleConfig

_SECRET_QUERY = ("key", "token", "secret", "password", "pass", "auth", "sig")


def redact_url(url: str) -> str:
    """A URL fit for output and logs: the password (and user) in it and any query value that
    looks like a credential replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, "***" if any(s in k.lower() for s in _SECRET_QUERY) else v) for k, v in pairs],
                safe="*",
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparseable URL>"


class Settings(BaseSettings):
    """Configuration of producers, workers and tools. See the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="SGR_", extra="ignore")

    # Where things live
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)
    queue: str = "cart-events"
    data_dir: Path = Path("data")
    offers_stream: str = "sgr:offers"
    offers_channel: str = "sgr:offers:live"
    dead_letter_key: str = "sgr:dead-letters"
    key_prefix: str = "sgr"  # the project's other Redis keys (worker/keys.py)
    offers_stream_maxlen: int = Field(default=100_000, ge=0)  # about; 0 = never trimmed
    offers_retention_hours: float = Field(
        default=168.0, gt=0, le=24 * 366
    )  # published markers' lifetime
    history_source: Literal["snapshot", "duckdb"] = "snapshot"
    # The hot store: empty = the SQLite file in the data folder; postgresql://... for a fleet
    hot_store_url: SecretStr = SecretStr("")
    metrics_port: int = Field(default=9108, ge=1, le=65535)

    # The engine that writes offers
    engine: Literal["auto", "vllm", "policy"] = "auto"
    llm_url: str = Field(default="http://127.0.0.1:8000/v1", repr=False)
    llm_model: str | None = None
    llm_api_key: SecretStr = SecretStr("EMPTY")
    llm_timeout_s: float = Field(default=30.0, gt=0)
    llm_retries: int = Field(default=2, ge=0, le=10)
    llm_backoff_s: float = Field(default=0.2, ge=0)
    llm_max_tokens: int = Field(default=320, ge=16)
    llm_temperature: float = Field(default=0.5, ge=0, le=2)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, ge=0)
    llm_concurrency: int = Field(default=8, ge=1, le=256)  # requests in flight per batch job
    on_invalid_answer: Literal["policy", "no_offer"] = "policy"

    # Offer codes (random and stored: worker/codes.py)
    offer_ttl_hours: float = Field(default=48.0, gt=0, le=24 * 366)

    # Business rules (see worker/rules.py and the README's rules table)
    min_cart_value: float = Field(default=20.0, ge=0)
    offer_window_hours: float = Field(default=24.0, ge=0, le=24 * 366)
    margin_floor: float = Field(default=0.10, ge=0, le=1)
    churn_high: float = Field(default=0.7, ge=0, le=1)
    churn_low: float = Field(default=0.3, ge=0, le=1)
    high_churn_margin_share: float = Field(default=0.5, ge=0, le=1)
    mid_churn_margin_share: float = Field(default=0.25, ge=0, le=1)
    low_churn_cap_pct: float = Field(default=5.0, ge=0, le=100)
    loyal_ltv: float = Field(default=2000.0, ge=0)
    loyal_cap_pct: float = Field(default=5.0, ge=0, le=100)
    new_customer_cap_pct: float = Field(default=5.0, ge=0, le=100)
    low_stock_factor: float = Field(default=0.5, ge=0, le=1)
    max_discount_pct: float = Field(default=30.0, ge=0, le=100)
    min_discount_pct: float = Field(default=1.0, ge=0, le=100)

    # The event contract: how far occurred_at may be from the worker's clock
    event_max_age_hours: float = Field(default=24.0 * 30, gt=0, le=24 * 3660)
    event_max_skew_s: float = Field(default=300.0, ge=0, le=86_400)

    # Delivery
    max_attempts: int = Field(default=3, ge=1, le=20)
    job_timeout_s: int = Field(default=120, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    reap_interval_s: float = Field(default=5.0, ge=0)  # worker/reaper.py; 0 = not in workers

    @model_validator(mode="after")
    def _llm_fits_in_job(self) -> Settings:
        worst = (
            self.llm_retries + 1
        ) * self.llm_timeout_s + self.llm_backoff_s * 2**self.llm_retries
        if worst >= self.job_timeout_s:
            raise ValueError(
                f"SGR_JOB_TIMEOUT_S={self.job_timeout_s} must exceed the LLM's worst case "
                f"(SGR_LLM_RETRIES={self.llm_retries} + 1) x SGR_LLM_TIMEOUT_S={self.llm_timeout_s}"
                f" + backoff = {worst:.0f} s, or RQ would kill jobs mid-retry"
            )
        return self

    def rule_config(self) -> RuleConfig:
        """The rules' parameters, taken from these settings (their one definition)."""
        return RuleConfig(**{name: getattr(self, name) for name in RuleConfig.__dataclass_fields__})

    def time_limits(self) -> TimeLimits:
        return TimeLimits(
            timedelta(hours=self.event_max_age_hours), timedelta(seconds=self.event_max_skew_s)
        )

    @property
    def offer_ttl(self) -> timedelta:
        return timedelta(hours=self.offer_ttl_hours)

    @property
    def hot_db(self) -> Path:
        return self.data_dir / "hot.sqlite"

    @property
    def cold_db(self) -> Path:
        return self.data_dir / "cold.duckdb"

    @property
    def history_db(self) -> Path:
        return self.data_dir / "history.sqlite"


class SettingsError(ValueError):
    """Settings that do not validate; each line names the variable (``SGR_ENGINE``) and never
    echoes a secret's value."""


def _variable(loc: tuple[Any, ...]) -> str:
    return "SGR_" + str(loc[0]).upper() if loc else "settings"


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (and overrides), or SettingsError naming each variable."""
    try:
        settings = Settings()
        return (
            settings.model_validate({**settings.model_dump(), **overrides})
            if overrides
            else settings
        )
    except ValidationError as exc:
        secret = {n for n, f in Settings.model_fields.items() if f.annotation is SecretStr}
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            name = _variable(loc)
            msg = err["msg"].removeprefix("Value error, ")
            given = str(err.get("input"))
            if loc and "url" in str(loc[0]):
                given = redact_url(given)
            shown = "" if not loc or loc[0] in secret else f" (got {given[:60]!r})"
            lines.append(f"{name}: {msg}{shown}")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None
