"""Prometheus metrics of the worker, in one registry that the ops server exposes at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

JOBS = Counter(
    "assessment_jobs_total",
    "Jobs finished, by outcome (completed, failed, skipped) and source (ai, fallback, cache, none).",
    ["outcome", "source"],
    registry=REGISTRY,
)
# Present from the start, so rate() and increase() see the first job of each kind.
for _outcome, _sources in (("completed", ("ai", "cache", "fallback")), ("failed", ("none",)),
                           ("skipped", ("ai", "cache", "fallback", "none"))):
    for _source in _sources:
        JOBS.labels(_outcome, _source)
FALLBACKS = Counter(
    "assessment_fallbacks_total", "Fallback recommendations, by reason.", ["reason"], registry=REGISTRY
)
JOB_ERRORS = Counter(
    "assessment_job_errors_total",
    "Failed job attempts (retried, or dead-lettered on the last one), by error kind.",
    ["kind"],
    registry=REGISTRY,
)
QUEUE_WAIT_SECONDS = Histogram(
    "assessment_queue_wait_seconds", "From insert to the worker first taking the job (retries not included).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
AI_CALL_SECONDS = Histogram(
    "assessment_ai_call_seconds", "The whole AI step (all attempts), by result (ok, the failure reason, or cancelled).",
    ["result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30),
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "assessment_job_seconds", "From the worker taking a job to its result being committed.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
AI_TOKENS = Counter(
    "assessment_ai_tokens_total", "Tokens the AI billed, by the model asked for (OPENAI_MODEL) and kind (prompt, "
    "completion).", ["model", "kind"], registry=REGISTRY,
)
AI_COST_USD = Counter(
    "assessment_ai_cost_usd_total", "Estimated AI spend in US dollars: tokens times the configured prices "
    "(AI_PRICE_PROMPT_PER_1K_TOKENS_USD, AI_PRICE_COMPLETION_PER_1K_TOKENS_USD), by model.", ["model"],
    registry=REGISTRY,
)
AI_RETRIES = Counter(
    "assessment_ai_retries_total", "AI calls retried inside the deadline, by reason.", ["reason"],
    registry=REGISTRY,
)
AI_RATE_LIMITED = Counter(
    "assessment_ai_rate_limited_total", "HTTP 429 answers from the AI provider (every replica then waits the time "
    "it names; the try is retried within the deadline).", registry=REGISTRY,
)
# Admission of AI tries (worker/admission.py, decision 0013).
ADMISSION_DECISIONS = ("admitted", "scheduled", "deferred", "user_budget_exhausted", "daily_budget_exhausted",
                       "lease_lost")
AI_ADMISSIONS = Counter(
    "assessment_ai_admissions_total", "Answers of the shared admission of AI tries, by decision: admitted (start "
    "now), scheduled (start after waiting for the provider's pace or pause), deferred (no start within the job's "
    "wait yet; it asks again), user_budget_exhausted, daily_budget_exhausted, lease_lost.", ["decision"],
    registry=REGISTRY,
)
for _decision in ADMISSION_DECISIONS:
    AI_ADMISSIONS.labels(_decision)
AI_ADMISSION_WAIT_SECONDS = Histogram(
    "assessment_ai_admission_wait_seconds", "From a job asking to call the AI to its first try starting (or to "
    "giving up), by outcome: admitted, provider_capacity (AI_MAX_WAIT_SECONDS passed), user_budget_exhausted, "
    "daily_budget_exhausted, shutdown, lease_lost, error.", ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
AI_JOBS_WAITING = Gauge(
    "assessment_ai_jobs_waiting", "Jobs of this worker waiting for provider capacity now.", registry=REGISTRY,
)
AI_OLDEST_WAIT_SECONDS = Gauge(
    "assessment_ai_oldest_wait_seconds", "How long the job of this worker that has waited longest for provider "
    "capacity has waited so far (0 when none waits).", registry=REGISTRY,
)
AI_DAILY_SPEND_USD = Gauge(
    "assessment_ai_daily_spend_usd", "The project's estimated AI spend of the current UTC day (settled calls), read "
    "from the database every few seconds: every replica reports the same, aggregate with max.", registry=REGISTRY,
)
AI_DAILY_BUDGET_USD = Gauge(
    "assessment_ai_daily_budget_usd", "AI_DAILY_BUDGET_USD (NaN when no budget is set).", registry=REGISTRY,
)
AI_DAILY_BUDGET_REMAINING_USD = Gauge(
    "assessment_ai_daily_budget_remaining_usd", "AI_DAILY_BUDGET_USD minus today's spend, at least 0 (NaN when no "
    "budget is set).", registry=REGISTRY,
)
IN_FLIGHT = Gauge("assessment_jobs_in_flight", "Jobs this worker holds a lease on.", registry=REGISTRY)
QUEUE_DEPTH = Gauge(
    "assessment_queue_depth", "Messages in a queue (visible or leased).", ["queue"], registry=REGISTRY
)
QUEUE_OLDEST_AGE_SECONDS = Gauge(
    "assessment_queue_oldest_message_age_seconds", "Age of the oldest message in a queue.", ["queue"],
    registry=REGISTRY,
)
LISTEN_CONNECTED = Gauge(
    "assessment_worker_listen_connected", "1 while the LISTEN connection is up (notifications wake the worker at "
    "once; without it, jobs wait for the next poll).", registry=REGISTRY,
)
# What the worker retries when the database refuses or is away; each is also logged.
DATABASE_OPERATIONS = ("take", "commit", "extend_leases", "release_leases", "acknowledge", "cache_lookup",
                       "record_failure", "dead_letter", "readiness", "admit", "settle", "drafts")
# transient: retried; permanent: an operator must act (a grant, a migration); bug: neither (worker/db_errors.py).
DATABASE_ERROR_KINDS = ("transient", "permanent", "bug")
DATABASE_ERRORS = Counter(
    "assessment_database_errors_total", "Database statements that failed and were left to a retry or a lease, "
    f"by operation ({', '.join(DATABASE_OPERATIONS)}) and kind ({', '.join(DATABASE_ERROR_KINDS)}); commit is "
    "retried in place.", ["operation", "kind"],
    registry=REGISTRY,
)
for _operation in DATABASE_OPERATIONS:  # present from the start, so rate() and increase() see the first one
    for _kind in DATABASE_ERROR_KINDS:
        DATABASE_ERRORS.labels(_operation, _kind)
BUSY_COMMITS = Counter(
    "assessment_busy_commits_total", "Commits that found their assessment held by another transaction (its owner's "
    "statement, say) and were tried again on their own.", registry=REGISTRY,
)
# Writes refused by fencing: this worker's lease had lapsed and the message was delivered again since.
FENCED_OPERATIONS = ("extend_leases", "release_leases", "commit", "acknowledge", "record_failure", "dead_letter",
                     "admit")
FENCED_WRITES = Counter(
    "assessment_fenced_writes_total", "Writes that changed nothing because the job's message had been delivered "
    f"again since this worker leased it, by operation ({', '.join(FENCED_OPERATIONS)}).", ["operation"],
    registry=REGISTRY,
)
for _operation in FENCED_OPERATIONS:
    FENCED_WRITES.labels(_operation)
# What became of each recommendation the model finished writing in a streamed answer (worker/drafts.py).
DRAFT_OUTCOMES = ("sent", "not_processing", "invalid", "failed", "superseded")
DRAFTS = Counter(
    "assessment_drafts_total", "Streamed recommendations, by outcome: sent to the owner, not_processing (the lease "
    "or the processing status was gone), invalid (broke the recommendation rules), failed (the database refused "
    "or did not answer in time), superseded (not sent yet when the answer was complete).", ["outcome"],
    registry=REGISTRY,
)
for _outcome in DRAFT_OUTCOMES:
    DRAFTS.labels(_outcome)
READY = Gauge(
    "assessment_worker_ready", "1 when the last readiness check (/ready, and every queue-metrics refresh) passed.",
    registry=REGISTRY,
)
OPS_CONNECTIONS_DROPPED = Counter(
    "assessment_ops_connections_dropped_total",
    "Connections to the ops port closed without an answer, by why (over_limit, evicted, slow_client).",
    ["reason"], registry=REGISTRY,
)
