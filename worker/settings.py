"""One typed settings object for every process; environment variables are prefixed ``SGR_``."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.domain.events import TimeLimits
from worker.domain.experiment import Experiment
from worker.domain.recovery import QuietHours, RecoveryConfig, zone
from worker.domain.rules import RuleConfig
from worker.redact import redact, redact_url

__all__ = [
    "NOT_SETTINGS",
    "Settings",
    "SettingsError",
    "UnknownSetting",
    "load_settings",
    "redact_url",
    "unknown_variables",
]  # redact_url: its old home

# ``SGR_`` variables that are not settings, yet legitimately set: the test suite's own, and the
# scripts' and compose file's (each named where it is read). Any other unknown ``SGR_`` variable
# is refused (``unknown_variables``): a misspelt setting must not be ignored in silence.
NOT_SETTINGS_PREFIXES = ("SGR_TEST_",)  # tests/conftest.py, tests/vllm: SGR_TEST_REDIS_URL, ...
NOT_SETTINGS = {
    "SGR_STOP_ON_FATAL": "worker/jobs.py: stop the process when it cannot start (tests)",
    "SGR_VLLM_VENV": "deploy/vllm/*.sh: the vLLM CPU venv",
    "SGR_VLLM_RUN_DIR": "deploy/vllm/*.sh: pid and log files of the vLLM server",
    "SGR_CACHE": "deploy/vllm/common.sh: the scripts' cache folder",
    "SGR_WORKERS": "deploy/compose.yaml: worker replicas (read by compose, not by sgr)",
    "SGR_IMAGE_TAG": "deploy/compose.yaml: the image tag (read by compose, not by sgr)",
}
# Settings of earlier releases, refused with what replaced them.
RETIRED = {
    "SGR_CODE_SECRET": "offer codes are random and stored in the hot store: remove it",
}


class JobOptions(TypedDict):
    """How an event's job is enqueued (``Settings.job_options``)."""

    max_attempts: int
    job_timeout: int
    result_ttl: int
    failure_ttl: int


class Settings(BaseSettings):
    """Configuration of producers, workers and tools. Every field has a ``description``: they make
    docs/configuration.md (``sgr docs config``)."""

    model_config = SettingsConfigDict(env_prefix="SGR_", extra="ignore")

    # Where things live
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        repr=False,
        description=(
            "Redis for the queue, the results and the offers stream; `redis://:password@host/0` and"
            " `rediss://` (TLS) work (the password is a secret: redacted in output)"
        ),
    )
    queue: str = Field(
        default="cart-events",
        description="RQ queue name the producers fill and the workers drain",
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder of `hot.sqlite`, `cold.duckdb` and `history.sqlite`",
    )
    offers_stream: str = Field(
        default="sgr:offers",
        description="Redis Stream of published offers and negotiation replies",
    )
    offers_channel: str = Field(
        default="sgr:offers:live",
        description="Pub/Sub channel announcing each published offer",
    )
    dead_letter_key: str = Field(
        default="sgr:dead-letters",
        description="Redis list of dead letters",
    )
    key_prefix: str = Field(
        default="sgr",
        description=(
            "Namespace of the project's other Redis keys (reaper lock and counters, metrics, the "
            "bridge's lists; `worker/keys.py` lists every key)"
        ),
    )
    offers_stream_maxlen: int = Field(
        default=100_000,
        ge=0,
        description=(
            "The offers stream, and the outcome stream, are each trimmed to about this many "
            "entries (`XADD MAXLEN ~`; 0 = never)"
        ),
    )
    offers_retention_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 366,
        description=(
            "How long the per-offer 'published' marker keys live (they make publication "
            "exactly-once: needed from the stream entry to the hot store's `published_at`, and by "
            "the reaper's 15-minute check for entries a Redis crash lost); about 90 bytes each, "
            "the largest share of Redis at steady state (docs/operations.md#redis-memory), hours"
        ),
    )
    offers_stream_max_age_hours: float = Field(
        default=168.0,
        gt=0,
        le=24 * 366,
        description=(
            "Offers stream entries older than this are trimmed (`XTRIM MINID`, by each reaper "
            "pass and `sgr retention run`; consumers must read within it), hours"
        ),
    )
    retention_days: float = Field(
        default=0.0,
        ge=0,
        le=3660,
        description=(
            "Processed events, offers and turns older than this move to the cold store and leave "
            "the hot store (`sgr retention run`); never sooner than the offer window, the event "
            "age limit and the code validity allow, and never a live unredeemed offer "
            "(docs/operations.md#retention); 0 = keep everything in the hot store, days"
        ),
    )
    rejected_max: int = Field(
        default=10_000,
        ge=1,
        description=(
            "The bridge's rejected list keeps its newest this many entries (`LTRIM` on each push)"
        ),
    )
    publish_cap: bool = Field(
        default=False,
        description=(
            "Put `cap_pct` (the largest discount the rules allowed) on the offers stream; off by "
            "default: a consumer that shows or forwards it tells customers what to haggle for "
            "(the hot store keeps it either way)"
        ),
    )
    history_source: Literal["snapshot", "duckdb"] = Field(
        default="snapshot",
        description=(
            "Where workers read customer history: `snapshot` (`history.sqlite`, a copy of the cold "
            "store made by `sgr history sync`) or `duckdb` (`cold.duckdb` itself: always current, "
            "slower, 20-30 MiB more per worker)"
        ),
    )
    hot_store_url: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "The hot store: empty = `hot.sqlite` in the data folder; `sqlite:///PATH`; "
            "`postgresql://...` for a fleet (a secret: never printed)"
        ),
    )
    metrics_port: int = Field(
        default=9108,
        ge=1,
        le=65535,
        description="Port of `sgr metrics serve` (Prometheus)",
    )

    # The engine that writes offers
    engine: Literal["auto", "vllm", "policy", "openai"] = Field(
        default="auto",
        description=(
            "Who writes offers: `vllm`, `policy` (the rules engine alone), `openai` (a hosted "
            "OpenAI-compatible API at `SGR_LLM_URL`; needs `SGR_LLM_MODEL` and `SGR_LLM_API_KEY`) "
            "or `auto` (the LLM endpoint if it answers at start, else the rules engine; logged; "
            "a 401/403 from it stops the worker)"
        ),
    )
    llm_url: str = Field(
        default="http://127.0.0.1:8000/v1",
        repr=False,
        description="OpenAI-compatible endpoint (vLLM); a password in it is redacted in output",
    )
    llm_model: str | None = Field(
        default=None,
        description="Model name; read from `/v1/models` when not set",
    )
    llm_api_key: SecretStr = Field(
        default=SecretStr("EMPTY"),
        description="API key for the endpoint (a secret: never logged)",
    )
    llm_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Deadline of one LLM answer, seconds: connecting, sending and reading of every "
            "attempt, and the waits between retries, together"
        ),
    )
    llm_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description=(
            "Retries after 5xx, 429, refused or broken connections, invalid or truncated output "
            "(within the deadline, `SGR_LLM_TIMEOUT_S`)"
        ),
    )
    llm_retry_after_max_s: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Longest `Retry-After` (429, 503; seconds form) a worker waits before retrying, "
            "seconds; a longer one is capped, and none is waited past the deadline"
        ),
    )
    llm_backoff_s: float = Field(
        default=0.2,
        ge=0,
        description="First backoff before a retry, seconds; doubled each retry, with jitter",
    )
    llm_max_tokens: int = Field(
        default=320,
        ge=16,
        description=(
            "Most tokens of an answer (the short SGR schema takes about 130 on SmolLM2-135M)"
        ),
    )
    llm_temperature: float = Field(
        default=0.5,
        ge=0,
        le=2,
        description="Sampling temperature (0.5: see docs/llm.md, prompt and schema variants)",
    )
    breaker_failures: int = Field(
        default=3,
        ge=1,
        description="Failed LLM requests in a row that open the circuit breaker",
    )
    breaker_cooldown_s: float = Field(
        default=30.0,
        ge=0,
        description="How long an open breaker skips the LLM before one trial, seconds",
    )
    llm_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="LLM requests a batch job sends at once (its eligible carts, in threads)",
    )
    llm_warmup: bool = Field(
        default=True,
        description=(
            "At start, time one small request to the LLM server and size the deadline of an answer "
            "from the measured speed (never below `SGR_LLM_TIMEOUT_S`, never past what "
            "`SGR_JOB_TIMEOUT_S` leaves), so a slow or loaded CPU still gets model-written offers"
        ),
    )
    message_mode: Literal["catalogue", "free"] = Field(
        default="catalogue",
        description=(
            "How the model writes the offer's sentence: `catalogue` (it chooses one of the approved "
            "entries allowed for the cart, an enum of the request's schema; the default for small "
            "models) or `free` (its own sentence, refused by the message and claims checks when it "
            "promises what the shop did not)"
        ),
    )
    copy_catalogue: Path | None = Field(
        default=None,
        description=(
            "The shop's approved-copy catalogue (JSON, docs/copy.md); unset = the shipped "
            "`worker/engines/copy_catalogue.json`"
        ),
    )
    publish_reasoning: bool = Field(
        default=False,
        description=(
            "Put the answer's reasoning (JSON, its texts that fail the message checks withheld) on "
            "the offers stream as `reasoning`; off by default: it is for the audit in the hot "
            "store, not for a shop's front end"
        ),
    )
    on_invalid_answer: Literal["policy", "no_offer"] = Field(
        default="policy",
        description=(
            "When an engine's answer fails a check: `policy` (the rules engine's offer) or "
            "`no_offer`"
        ),
    )

    # Offer codes (random and stored: worker/domain/codes.py)
    offer_ttl_hours: float = Field(
        default=48.0,
        gt=0,
        le=24 * 366,
        description="How long an offer's code is valid, hours",
    )

    # Business rules (worker/domain/rules.py; docs/rules.md)
    min_cart_value: float = Field(
        default=20.0,
        ge=0,
        description="Smallest cart value that can get an offer",
    )
    offer_window_hours: float = Field(
        default=24.0,
        ge=0,
        le=24 * 366,
        description="At most one offer per customer within this many hours",
    )
    margin_floor: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Margin fraction always kept: the cap never exceeds the margin minus this",
    )
    churn_high: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="Churn probability above which a customer is in the high-churn band",
    )
    churn_low: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Churn probability below which a customer is in the low-churn band",
    )
    high_churn_margin_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of the margin a high-churn customer may get",
    )
    mid_churn_margin_share: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Share of the margin a customer in the middle churn band may get",
    )
    low_churn_cap_pct: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="Cap for a low-churn customer, percent",
    )
    loyal_ltv: float = Field(
        default=2000.0,
        ge=0,
        description="Lifetime value from which a customer counts as loyal",
    )
    loyal_cap_pct: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="Cap for a loyal customer, percent (loyal customers buy anyway)",
    )
    new_customer_cap_pct: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="Cap for a customer without history, percent",
    )
    low_stock_factor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Cap multiplier for `low_stock` carts (scarce goods sell without a discount)",
    )
    max_discount_pct: float = Field(
        default=30.0,
        ge=0,
        le=100,
        description="Absolute ceiling of any discount, percent",
    )
    min_discount_pct: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="A cap below this means no offer, percent",
    )
    policy_share_of_cap: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Share of the cap the rules engine offers (as the engine, and as the fallback after "
            "a failed or refused LLM answer; negotiation opens there): rounded down to a whole "
            "percent (0.1 below one percent), never below `SGR_MIN_DISCOUNT_PCT`, never above "
            "the cap"
        ),
    )

    negotiation_first_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description=(
            "Negotiation: the first counter-offer is at most this share of the cap (rounded down "
            "as `SGR_POLICY_SHARE_OF_CAP`; docs/negotiation.md)"
        ),
    )
    negotiation_step_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description=(
            "Negotiation: each later counter-offer is at most this share of the cap above the "
            "offer on the table (at least one point, or the rest up to the cap)"
        ),
    )
    negotiation_turns_to_cap: int = Field(
        default=3,
        ge=1,
        le=20,
        description=(
            "Negotiation: the counter-offer that reaches the cap is at the earliest this many "
            "counter-offers into the session"
        ),
    )

    # Repeat abandoners (worker/domain/rules.py: repeat_abandoner; docs/rules.md). Each lowers
    # a cap or refuses an offer, never raises one; 0 switches a rule off.
    repeat_window_days: float = Field(
        default=30.0,
        ge=0,
        le=366,
        description="The repeat-abandoner rules look back this many days (0 = rules off)",
    )
    repeat_lower_after: int = Field(
        default=2,
        ge=0,
        le=1000,
        description=(
            "A customer who received this many offers within the window gets the cap times "
            "`SGR_REPEAT_CAP_FACTOR` (0 = off)"
        ),
    )
    repeat_cap_factor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Cap multiplier for a customer `SGR_REPEAT_LOWER_AFTER` applies to",
    )
    repeat_refuse_after: int = Field(
        default=4,
        ge=0,
        le=1000,
        description=(
            "A customer who received this many offers within the window gets none "
            "(`no_offer: repeat_abandoner`; 0 = off)"
        ),
    )
    repeat_redeem_abandons: int = Field(
        default=3,
        ge=0,
        le=1000,
        description=(
            "A customer who redeemed a code within the window after abandoning this many carts "
            "in it gets none (`no_offer: repeat_abandoner`: abandoning on purpose; 0 = off)"
        ),
    )

    # Cart recovery on the shop's clock (docs/recovery.md)
    offer_delay_minutes: float = Field(
        default=240.0,
        ge=0,
        le=7 * 24 * 60,
        description=(
            "An abandonment's decision waits this long after `occurred_at` and is taken on the "
            "session's newest state then (an order or a newer event since: no offer); 240 is "
            "Klaviyo's suggested 4 hours, between Shopify's 1 and 6 (0 = decide at once), "
            "minutes"
        ),
    )
    quiet_hours: str = Field(
        default="",
        max_length=11,
        description=(
            "Local hours `HH:MM-HH:MM` (e.g. `21:00-09:00`) in which no decision is taken: one "
            "due then waits for their end, in the event's `timezone` or `SGR_TIMEZONE` "
            "(empty = none)"
        ),
    )
    timezone: str = Field(
        default="UTC",
        max_length=64,
        description="The customers' IANA time zone when an event names none (quiet hours)",
    )
    attribution_hours: float = Field(
        default=72.0,
        gt=0,
        le=24 * 366,
        description=(
            "An order within this many hours of an offer, without its code, counts as "
            "`converted` (attribution; docs/recovery.md), and of an eligible abandonment counts "
            "for the lift report (docs/lift.md), hours"
        ),
    )

    # The event contract: how far occurred_at may be from the worker's clock
    event_max_age_hours: float = Field(
        default=24.0 * 30,
        gt=0,
        le=24 * 3660,
        description=(
            "An event whose `occurred_at` is older than this is refused (a dead letter naming the "
            "field), hours"
        ),
    )
    event_max_skew_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description=(
            "An event dated further than this ahead of the worker's clock is refused, seconds"
        ),
    )

    # Delivery
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Attempts per event before it becomes a dead letter",
    )
    job_timeout_s: int = Field(
        default=120,
        ge=1,
        description=(
            "RQ job timeout, seconds; must exceed the LLM's worst case (retries x timeout + "
            "backoff)"
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description=(
            "Worker log level, RQ's own lines included (`WARNING` quiets its per-job lines; "
            "other libraries log from `WARNING` up)"
        ),
    )
    log_format: Literal["json", "console"] = Field(
        default="json",
        description=(
            "How a worker writes its lines on stderr: `json` (one JSON object a line, RQ's lines "
            "and tracebacks included, a traceback as a field) or `console` (readable, for people)"
        ),
    )
    reap_interval_s: float = Field(
        default=5.0,
        ge=0,
        description=(
            "How often each worker's reaper re-runs jobs of dead workers and flushes the outbox, "
            "seconds (0 = no reaper in workers)"
        ),
    )
    store_retry_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description=(
            "How long a job waits, retrying with backoff, for a hot store that went away (its "
            "connections closed by a restart, a failover or `pg_terminate_backend`) before it "
            "goes back to the queue with its attempt given back; the worker keeps running either "
            "way (at most half of `SGR_JOB_TIMEOUT_S`, so that RQ never kills a waiting job), "
            "seconds"
        ),
    )
    job_result_ttl_s: int = Field(
        default=60,
        ge=0,
        le=7 * 86_400,
        description=(
            "How long RQ keeps a finished job and its result (the outcome; the hot store keeps it "
            "for good), seconds"
        ),
    )
    job_failure_ttl_s: int = Field(
        default=86_400,
        ge=60,
        le=30 * 86_400,
        description=(
            "How long RQ keeps a failed job in its failed registry (the reaper makes its dead "
            "letters within seconds; the exception text stored is redacted), seconds"
        ),
    )

    # Holdout experiment (worker/domain/experiment.py; docs/lift.md)
    holdout_pct: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description=(
            "Share of customers held out of offers to measure their lift, percent (0 = no "
            "experiment; merchants use 5-10); needs SGR_EXPERIMENT_SALT"
        ),
    )
    experiment_salt: SecretStr = Field(
        default=SecretStr(""),
        repr=False,
        description=(
            "Key of the keyed hash that puts each customer in a group (a secret, at least 8 "
            "characters): a new salt starts a new experiment"
        ),
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        _check_url(value, ("redis", "rediss", "unix"), "redis://HOST:6379/0")
        parts = urlsplit(value)
        db = parts.path.strip("/")
        if parts.scheme != "unix" and db and not db.isdigit():
            raise ValueError(f"the database after the host must be a number, got {db[:20]!r}")
        return value

    @field_validator("hot_store_url")
    @classmethod
    def _hot_store_url(cls, value: SecretStr) -> SecretStr:
        """A PostgreSQL URL psycopg could not parse (a port that is no number) is refused here,
        naming SGR_HOT_STORE_URL (its value is a secret: never shown); other forms are checked
        where the store is opened (``stores/hot.py``)."""
        url = value.get_secret_value()
        if url.startswith(("postgresql://", "postgres://")):  # no host: a local socket
            _check_url(
                url, ("postgresql", "postgres"), "postgresql://HOST:5432/DB", host_required=False
            )
        return value

    @field_validator("llm_url")
    @classmethod
    def _llm_url(cls, value: str) -> str:
        _check_url(value, ("http", "https"), "http://HOST:8000/v1")
        return value

    @model_validator(mode="after")
    def _recovery_parses(self) -> Settings:
        QuietHours.parse(self.quiet_hours)  # ValueError naming the text
        zone(self.timezone)
        if self.offer_delay_minutes / 60 >= self.event_max_age_hours:
            raise ValueError(
                f"SGR_OFFER_DELAY_MINUTES={self.offer_delay_minutes:g} must be shorter than "
                f"SGR_EVENT_MAX_AGE_HOURS={self.event_max_age_hours:g}"
            )
        return self

    # The HTTP API (sgr api; docs/api.md)
    api_rate_limit: int = Field(
        default=1200,
        ge=0,
        le=10_000_000,
        description=(
            "Requests one API key may make per window (`SGR_API_RATE_WINDOW_S`); more are "
            "answered 429 with Retry-After (0 = no limit)"
        ),
    )
    api_rate_window_s: int = Field(
        default=60,
        ge=1,
        le=86_400,
        description="The API's rate-limit window (fixed windows, counted in Redis), seconds",
    )
    api_threads: int = Field(
        default=8,
        ge=1,
        le=256,
        description=(
            "Requests one `sgr api` process serves at once (its threads, each with its own "
            "hot-store connection)"
        ),
    )
    api_max_events: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Events one `POST /v1/events` may carry",
    )
    api_idempotency_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 90,
        description=(
            "How long an Idempotency-Key's answer is kept: the same key after that is a new "
            "request, hours"
        ),
    )

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

    @model_validator(mode="after")
    def _experiment_has_a_salt(self) -> Settings:
        if self.holdout_pct > 0 and len(self.experiment_salt.get_secret_value()) < 8:
            raise ValueError(
                f"SGR_HOLDOUT_PCT={self.holdout_pct:g} needs SGR_EXPERIMENT_SALT of at least 8 "
                "characters (the key that puts customers in groups)"
            )
        return self

    def experiment(self) -> Experiment:
        """The holdout experiment these settings describe (none at a share of 0)."""
        return Experiment(self.holdout_pct / 100, self.experiment_salt.get_secret_value().encode())

    def rule_config(self) -> RuleConfig:
        """The rules' parameters, taken from these settings (their one definition)."""
        return RuleConfig(**{name: getattr(self, name) for name in RuleConfig.__dataclass_fields__})

    def recovery_config(self) -> RecoveryConfig:
        """The recovery's parameters (delay, quiet hours, default time zone)."""
        return RecoveryConfig(
            timedelta(minutes=self.offer_delay_minutes),
            QuietHours.parse(self.quiet_hours),
            self.timezone,
        )

    @property
    def claim_lease_s(self) -> float:
        """How long a claim on a due decision holds (a job's longest run, and a minute)."""
        return float(self.job_timeout_s + 60)

    def job_options(self) -> JobOptions:
        """How every producer here enqueues (``enqueue_events``' keyword arguments): the API,
        ``sgr produce``, ``sgr bridge`` and a dead letter's requeue, from ``SGR_MAX_ATTEMPTS``,
        ``SGR_JOB_TIMEOUT_S``, ``SGR_JOB_RESULT_TTL_S`` and ``SGR_JOB_FAILURE_TTL_S``."""
        return JobOptions(
            max_attempts=self.max_attempts,
            job_timeout=self.job_timeout_s,
            result_ttl=self.job_result_ttl_s,
            failure_ttl=self.job_failure_ttl_s,
        )

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


def _check_url(
    value: str, schemes: tuple[str, ...], example: str, *, host_required: bool = True
) -> None:
    """A URL a client library can open: one of ``schemes``, a host, a numeric port. The error
    never holds the URL's credentials (``load_settings`` shows the value redacted)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port that is not a number or out of range)
    except ValueError as exc:
        raise ValueError(f"not a URL a client can open: {exc} (e.g. {example} )") from None
    if parts.scheme not in schemes:
        listed = ", ".join(s + "://" for s in schemes)
        raise ValueError(f"the scheme must be one of {listed} (e.g. {example} )")
    if host_required and parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"no host in the URL (e.g. {example} )")


class SettingsError(ValueError):
    """Settings that do not validate; each line names the variable (``SGR_ENGINE``) and never
    echoes a secret's value. ``code``: the exit status ``sgr`` ends with."""

    code = 1


class UnknownSetting(SettingsError):
    """``SGR_`` variables that are no setting (a typo: ``SGR_HOT_STORE_URI``); exit status 2."""

    code = 2


def _known_names() -> list[str]:
    return sorted(f"SGR_{name.upper()}" for name in Settings.model_fields)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per ``SGR_`` variable of ``environ`` (default: this process's) that is no
    setting, naming the closest setting (``SGR_HOT_STORE_URI`` -> ``SGR_HOT_STORE_URL``)."""
    environ = os.environ if environ is None else environ
    known = _known_names()
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("SGR_") or upper in known or upper in NOT_SETTINGS:
            continue
        if upper.startswith(NOT_SETTINGS_PREFIXES):
            continue
        if upper in RETIRED:
            found.append(f"{name} is no longer a setting: {RETIRED[upper]}")
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "no setting has a similar name"
        found.append(f"{name} is not a setting: {hint}")
    return found


def _variable(loc: tuple[Any, ...]) -> str:
    return "SGR_" + str(loc[0]).upper() if loc else "settings"


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (and overrides), or SettingsError naming each variable
    (UnknownSetting for ``SGR_`` variables that are no setting, checked first)."""
    unknown = unknown_variables()
    if unknown:
        raise UnknownSetting("; ".join(unknown) + " (docs/configuration.md lists every setting)")
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
                given = redact(given)
            shown = "" if not loc or loc[0] in secret else f" (got {given[:60]!r})"
            lines.append(f"{name}: {msg}{shown}")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None
