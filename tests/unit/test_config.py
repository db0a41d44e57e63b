"""Settings: defaults, parsing, and errors that name the variable and say what to set."""

from __future__ import annotations

import pytest

from worker.config import load_settings
from worker.exceptions import ConfigError

URL = "postgresql://assessment_worker@127.0.0.1:54329/postgres"


def test_settings_defaults_when_only_database_url_is_set() -> None:
    settings = load_settings({"DATABASE_URL": URL})
    assert settings.database_url == URL
    assert settings.concurrency == 16
    assert settings.ops_port == 3005
    assert settings.openai_api_key is None
    assert settings.ai_deadline_seconds == 25.0


def test_settings_read_every_variable() -> None:
    settings = load_settings({
        "DATABASE_URL": URL, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_MODEL": "m", "WORKER_CONCURRENCY": "128", "WORKER_LEASE_SECONDS": "30",
        "WORKER_POLL_INTERVAL_SECONDS": "0.5", "WORKER_MAX_ATTEMPTS": "3", "AI_DEADLINE_SECONDS": "5",
        "CACHE_TTL_SECONDS": "0", "WORKER_SHUTDOWN_GRACE_SECONDS": "6", "WORKER_OPS_HOST": "0.0.0.0",
        "WORKER_OPS_PORT": "0", "LOG_LEVEL": "debug", "AI_PRICE_PROMPT_PER_1K_TOKENS_USD": "0.0025",
        "AI_PRICE_COMPLETION_PER_1K_TOKENS_USD": "0.01",
    })
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == "sk-test"
    assert (settings.concurrency, settings.lease_seconds, settings.max_attempts) == (128, 30, 3)
    assert settings.poll_interval_seconds == 0.5 and settings.cache_ttl_seconds == 0
    assert settings.log_level == "DEBUG" and settings.ops_port == 0
    prices = (settings.ai_price_prompt_per_1k_tokens_usd, settings.ai_price_completion_per_1k_tokens_usd)
    assert prices == (0.0025, 0.01)


def test_settings_empty_values_count_as_unset() -> None:
    settings = load_settings({"DATABASE_URL": URL, "OPENAI_API_KEY": "", "WORKER_CONCURRENCY": " "})
    assert settings.openai_api_key is None and settings.concurrency == 16


def test_settings_missing_database_url_says_what_to_run() -> None:
    with pytest.raises(ConfigError, match=r"DATABASE_URL is not set\. Run 'scripts/localdb up'"):
        load_settings({})


def test_settings_invalid_values_name_each_variable_and_value() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"DATABASE_URL": URL, "WORKER_CONCURRENCY": "lots", "WORKER_OPS_PORT": "70000",
                       "LOG_LEVEL": "loud"})
    message = str(error.value)
    assert "WORKER_CONCURRENCY='lots' is invalid" in message and "whole number" in message
    assert "WORKER_OPS_PORT='70000' is invalid" in message
    assert "LOG_LEVEL='LOUD' is invalid" in message


def test_settings_secret_is_not_shown_in_repr() -> None:
    settings = load_settings({"DATABASE_URL": URL, "OPENAI_API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(settings)


def test_settings_overrides_win_over_environment() -> None:
    assert load_settings({"DATABASE_URL": URL, "WORKER_CONCURRENCY": "4"}, concurrency=64).concurrency == 64
