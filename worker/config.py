"""Settings from the environment (and `.env`), validated once at start with errors that say what to set."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from worker.exceptions import ConfigError

# setting name -> (environment variable, what to do when it is wrong)
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "database_url": ("DATABASE_URL", "Run 'scripts/localdb up' and export the URL it prints, or use the "
                     "Supabase session connection string (docs/deployment.md)."),
    "openai_api_key": ("OPENAI_API_KEY", "Set your OpenAI key, or leave it unset to use fallback recommendations."),
    "openai_base_url": ("OPENAI_BASE_URL", "Set the base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1."),
    "openai_model": ("OPENAI_MODEL", "Set a model that supports structured outputs, e.g. gpt-4o-mini."),
    "concurrency": ("WORKER_CONCURRENCY", "Set a whole number of jobs in flight, 1-1000."),
    "lease_seconds": ("WORKER_LEASE_SECONDS", "Set the lease (visibility timeout) in whole seconds, 3-3600."),
    "poll_interval_seconds": ("WORKER_POLL_INTERVAL_SECONDS", "Set seconds between polls, 0.05-60."),
    "max_attempts": ("WORKER_MAX_ATTEMPTS", "Set how many deliveries a job gets before it is dead-lettered, 1-100."),
    "ai_deadline_seconds": ("AI_DEADLINE_SECONDS", "Set the deadline of the whole AI step in seconds, 0.1-300."),
    "ai_price_prompt_per_1k_tokens_usd": ("AI_PRICE_PROMPT_PER_1K_TOKENS_USD", "Set your model's price for 1,000 "
                                          "prompt (input) tokens in US dollars, e.g. 0.00015."),
    "ai_price_completion_per_1k_tokens_usd": ("AI_PRICE_COMPLETION_PER_1K_TOKENS_USD", "Set your model's price for "
                                              "1,000 completion (output) tokens in US dollars, e.g. 0.0006."),
    "ai_max_completion_tokens": ("AI_MAX_COMPLETION_TOKENS", "Set the most tokens one answer may have, a whole "
                                 "number 1-200000 (default 6000: ten recommendations at their longest)."),
    "ai_requests_per_minute": ("AI_REQUESTS_PER_MINUTE", "Set the requests a minute your provider account allows "
                               "for OPENAI_MODEL (a whole number above 0), or leave it unset for no limit."),
    "ai_tokens_per_minute": ("AI_TOKENS_PER_MINUTE", "Set the tokens a minute your provider account allows for "
                             "OPENAI_MODEL (a whole number above 0), or leave it unset for no limit."),
    "ai_max_wait_seconds": ("AI_MAX_WAIT_SECONDS", "Set how long a job may wait for provider capacity before it "
                            "gets fallback recommendations, in seconds above 0 and at most 3600 (default 300)."),
    "ai_user_daily_tokens": ("AI_USER_DAILY_TOKENS", "Set the AI tokens one user may use per UTC day (a whole "
                             "number above 0), or leave it unset for no per-user budget."),
    "ai_daily_budget_usd": ("AI_DAILY_BUDGET_USD", "Set the estimated AI spend allowed per UTC day for the whole "
                            "project in US dollars (a number above 0, e.g. 25), or leave it unset for no budget."),
    "ai_user_id_hmac_key": ("AI_USER_ID_HMAC_KEY", "Set a random secret of at least 32 characters (e.g. "
                            "'openssl rand -hex 32'), or leave it unset to derive one from OPENAI_API_KEY."),
    "ai_stream": ("AI_STREAM", "Set true to stream recommendations to their owner as the model writes them, or "
                  "false to ask for the whole answer at once."),
    "cache_ttl_seconds": ("CACHE_TTL_SECONDS", "Set seconds to reuse AI results (0 turns the cache off)."),
    "shutdown_grace_seconds": ("WORKER_SHUTDOWN_GRACE_SECONDS", "Set seconds to finish jobs on SIGTERM, 0-600, at "
                               "least AI_DEADLINE_SECONDS (a few seconds more leaves time to commit)."),
    "ops_host": ("WORKER_OPS_HOST", "Set the address the ops server listens on, e.g. 127.0.0.1 or 0.0.0.0."),
    "ops_port": ("WORKER_OPS_PORT", "Set the ops server port, 0-65535 (0 picks a free port)."),
    "log_level": ("LOG_LEVEL", "Set one of DEBUG, INFO, WARNING, ERROR."),
}

# Settings whose values never appear in a message or a log line.
SECRETS = frozenset({"openai_api_key", "ai_user_id_hmac_key"})


class Settings(BaseModel):
    """Every tunable of the worker. Field docs: .env.example."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: Annotated[str, Field(min_length=1)]
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 16
    lease_seconds: Annotated[int, Field(ge=3, le=3600)] = 15
    poll_interval_seconds: Annotated[float, Field(ge=0.05, le=60)] = 2.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    ai_deadline_seconds: Annotated[float, Field(ge=0.1, le=300)] = 25.0
    # OpenAI's list prices for the default model, gpt-4o-mini ($0.15 and $0.60 per million tokens); set
    # yours with OPENAI_MODEL. They only feed the cost estimate (assessment_ai_cost_usd_total).
    ai_price_prompt_per_1k_tokens_usd: Annotated[float, Field(ge=0)] = 0.00015
    ai_price_completion_per_1k_tokens_usd: Annotated[float, Field(ge=0)] = 0.0006
    # The longest valid answer (ten recommendations with every text at its maximum, 20,000 characters of
    # JSON) is about 5,300 tokens of English; the cap leaves room for that and no more (decision 0013).
    ai_max_completion_tokens: Annotated[int, Field(ge=1, le=200_000)] = 6000
    # Provider limits and spend budgets shared by every replica (worker/admission.py); unset = none.
    ai_requests_per_minute: Annotated[int, Field(gt=0)] | None = None
    ai_tokens_per_minute: Annotated[int, Field(gt=0)] | None = None
    ai_max_wait_seconds: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 300.0
    ai_user_daily_tokens: Annotated[int, Field(gt=0)] | None = None
    ai_daily_budget_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    # The key of the HMAC that turns a user id into the provider's safety_identifier; unset: derived from
    # OPENAI_API_KEY (worker/ai.py).
    ai_user_id_hmac_key: Annotated[SecretStr, Field(min_length=32)] | None = None
    # Ask for a stream and send each finished recommendation to its owner before the commit (worker/drafts.py).
    ai_stream: bool = True
    cache_ttl_seconds: Annotated[float, Field(ge=0)] = 86400.0
    # Longer than the AI deadline plus a commit: a job in flight at SIGTERM finishes instead of being paid
    # for twice (its AI call thrown away and made again by the next worker).
    shutdown_grace_seconds: Annotated[float, Field(ge=0, le=600)] = 30.0
    ops_host: str = "127.0.0.1"
    ops_port: Annotated[int, Field(ge=0, le=65535)] = 3005
    log_level: Annotated[str, Field(pattern="^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"

    @model_validator(mode="after")
    def _grace_covers_the_ai_deadline(self) -> Settings:
        if self.shutdown_grace_seconds < self.ai_deadline_seconds:
            raise ValueError(
                f"WORKER_SHUTDOWN_GRACE_SECONDS={self.shutdown_grace_seconds:g} is shorter than "
                f"AI_DEADLINE_SECONDS={self.ai_deadline_seconds:g}: an AI call in flight at shutdown would be "
                "thrown away and paid for again. Set the grace to the deadline plus a few seconds (default 30 "
                "for the default deadline of 25), or lower the deadline."
            )
        return self

    @model_validator(mode="after")
    def _one_call_fits_the_limits(self) -> Settings:
        cap = self.ai_max_completion_tokens
        for name, tokens in (("AI_USER_DAILY_TOKENS", self.ai_user_daily_tokens),
                             ("AI_TOKENS_PER_MINUTE", self.ai_tokens_per_minute)):
            if tokens is not None and tokens <= cap:
                raise ValueError(
                    f"{name}={tokens} is not more than AI_MAX_COMPLETION_TOKENS={cap}: no AI call could ever fit "
                    f"(each one reserves its prompt plus {cap} completion tokens). Raise {name} well above it, "
                    "or lower AI_MAX_COMPLETION_TOKENS."
                )
        worst_answer_usd = cap * self.ai_price_completion_per_1k_tokens_usd / 1000
        if self.ai_daily_budget_usd is not None and self.ai_daily_budget_usd <= worst_answer_usd:
            raise ValueError(
                f"AI_DAILY_BUDGET_USD={self.ai_daily_budget_usd:g} does not cover one answer at its longest "
                f"(AI_MAX_COMPLETION_TOKENS={cap} at AI_PRICE_COMPLETION_PER_1K_TOKENS_USD="
                f"{self.ai_price_completion_per_1k_tokens_usd:g}: ${worst_answer_usd:g}): no AI call could ever fit. "
                "Raise the budget."
            )
        return self


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from environment variables (empty means unset), then explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field, (variable, _) in ENVIRONMENT.items():
        raw = environ.get(variable, "").strip()
        if raw:
            values[field] = raw.upper() if field == "log_level" else raw
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across settings: its message names the variables
                problems.append(str(error["ctx"]["error"]) if "ctx" in error else error["msg"])
                continue
            field = str(error["loc"][0])
            variable, advice = ENVIRONMENT[field]
            if error["type"] == "missing":
                problems.append(f"{variable} is not set. {advice}")
            else:
                shown = (f"<{len(str(values.get(field)))} characters, not shown>" if field in SECRETS
                         else repr(values.get(field)))
                problems.append(f"{variable}={shown} is invalid: {error['msg']}. {advice}")
        raise ConfigError("Invalid worker settings:\n  " + "\n  ".join(problems)) from exc
