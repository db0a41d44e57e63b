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


def test_provider_limits_and_budgets_default_to_none_and_read_their_variables() -> None:
    defaults = load_settings({"DATABASE_URL": URL})
    assert (defaults.ai_requests_per_minute, defaults.ai_tokens_per_minute, defaults.ai_user_daily_tokens,
            defaults.ai_daily_budget_usd, defaults.ai_user_id_hmac_key) == (None, None, None, None, None)
    assert (defaults.ai_max_wait_seconds, defaults.ai_max_completion_tokens) == (300.0, 6000)
    settings = load_settings({
        "DATABASE_URL": URL, "AI_REQUESTS_PER_MINUTE": "500", "AI_TOKENS_PER_MINUTE": "200000",
        "AI_MAX_WAIT_SECONDS": "60", "AI_USER_DAILY_TOKENS": "100000", "AI_DAILY_BUDGET_USD": "25.5",
        "AI_MAX_COMPLETION_TOKENS": "4000", "AI_USER_ID_HMAC_KEY": "k" * 32,
    })
    assert (settings.ai_requests_per_minute, settings.ai_tokens_per_minute, settings.ai_user_daily_tokens) == (
        500, 200000, 100000)
    assert (settings.ai_max_wait_seconds, settings.ai_daily_budget_usd, settings.ai_max_completion_tokens) == (
        60.0, 25.5, 4000)


@pytest.mark.parametrize("variable", ["AI_REQUESTS_PER_MINUTE", "AI_TOKENS_PER_MINUTE", "AI_USER_DAILY_TOKENS",
                                      "AI_DAILY_BUDGET_USD", "AI_MAX_WAIT_SECONDS", "AI_MAX_COMPLETION_TOKENS"])
@pytest.mark.parametrize("value", ["0", "-5", "many", "nan", "inf", "1e999"])
def test_a_limit_or_budget_that_is_not_a_positive_number_is_refused_naming_the_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"DATABASE_URL": URL, variable: value})
    assert f"{variable}={value!r} is invalid" in str(error.value)


def test_limits_that_no_call_could_fit_are_refused() -> None:
    for variable in ("AI_USER_DAILY_TOKENS", "AI_TOKENS_PER_MINUTE"):
        with pytest.raises(ConfigError, match=f"{variable}=6000 is not more than AI_MAX_COMPLETION_TOKENS=6000"):
            load_settings({"DATABASE_URL": URL, variable: "6000"})
    with pytest.raises(ConfigError, match=r"AI_DAILY_BUDGET_USD=0.001 does not cover one answer at its longest"):
        load_settings({"DATABASE_URL": URL, "AI_DAILY_BUDGET_USD": "0.001"})
    assert load_settings({"DATABASE_URL": URL, "AI_USER_DAILY_TOKENS": "6001"}).ai_user_daily_tokens == 6001


def test_a_short_hmac_key_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"DATABASE_URL": URL, "AI_USER_ID_HMAC_KEY": "too-short-secret"})
    assert "AI_USER_ID_HMAC_KEY=<16 characters, not shown> is invalid" in str(error.value)
    assert "too-short-secret" not in str(error.value)
    settings = load_settings({"DATABASE_URL": URL, "AI_USER_ID_HMAC_KEY": "s" * 40})
    assert "s" * 40 not in repr(settings)
