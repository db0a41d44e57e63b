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
    "cache_ttl_seconds": ("CACHE_TTL_SECONDS", "Set seconds to reuse AI results (0 turns the cache off)."),
    "shutdown_grace_seconds": ("WORKER_SHUTDOWN_GRACE_SECONDS", "Set seconds to finish jobs on SIGTERM, 0-600, at "
                               "least AI_DEADLINE_SECONDS (a few seconds more leaves time to commit)."),
    "ops_host": ("WORKER_OPS_HOST", "Set the address the ops server listens on, e.g. 127.0.0.1 or 0.0.0.0."),
    "ops_port": ("WORKER_OPS_PORT", "Set the ops server port, 0-65535 (0 picks a free port)."),
    "log_level": ("LOG_LEVEL", "Set one of DEBUG, INFO, WARNING, ERROR."),
}


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
                problems.append(f"{variable}={values.get(field)!r} is invalid: {error['msg']}. {advice}")
        raise ConfigError("Invalid worker settings:\n  " + "\n  ".join(problems)) from exc
