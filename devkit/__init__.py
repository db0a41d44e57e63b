"""The development toolkit: everything scripts, tests and the benchmark share, and nothing the worker ships.

    localdb       the local Supabase-compatible database (start, bootstrap, push migrations, URLs)
    postgrest     acting as a user exactly as PostgREST does per request
    users         users as Supabase Auth creates them
    samples       sample answers and submitting them as users
    processes     worker and fake-AI processes, waiting, free ports
    fake_openai   an OpenAI-compatible HTTP server for tests and the benchmark
    run_local     `make run`: the whole product locally, followed as its users see it
    clients       supabase-py tools that act as a user of a real project (submit, watch)
    bench         the benchmark (pgbench drives the load)
    contract      generates the documented contract from worker/events.py and worker/models.py
    eval          scores recommendations (the fallback's, or a model's) with rules that need no model

Run a module from the repository's scripts/ (thin entry points that put the repository on the import
path), or `python -m devkit.<module>` from the repository root. Not part of the worker's wheel.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
