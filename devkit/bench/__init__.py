"""The benchmark: the pipeline on the local database, pgbench driving the load, Python only orchestrating.

    scripts/bench [--quick] [--json] [--workers 1,2] [--only SECTION ...] [--against DIR] [--py-spy FILE]

Sections: submit (users' inserts vs plain inserts), drain (worker processes draining a queue filled
while they were frozen: jobs/s, CPU per job, scale-out), latency (insert commit to result commit at
100/s), slow_ai (concurrency and memory with a 2 s AI), status_check (a user's read over many rows),
ai_client (the AI client's CPU), provider_limit (a burst against a provider that enforces a request limit,
and what admitting each AI call costs the database), streaming (how soon the first streamed recommendation
reaches its owner, and what streaming costs the worker in CPU). --against DIR runs drain and latency with another
tree's worker too, alternating, to measure a change side by side.
What each figure means and what bounds it: docs/performance.md.

It owns the local database while it runs: it turns the submission rate limit off (and restores it),
purges the job queues, and deletes what its `bench-run-*@bench.invalid` users created. Run it on a quiet
machine: every process shares the same cores.
"""
