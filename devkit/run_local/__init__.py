"""`make run`: the whole product locally, followed as its two demo users see it.

    scripts/run-local            keep running and print every status change until Ctrl-C
    scripts/run-local --once     exit when the samples are finished: 0 if all completed, 1 if one
                                 failed or was refused, 3 on timeout (--timeout, default 60 s)
    scripts/run-local --ai fallback
                                 no AI: the worker's deterministic fallback recommendations

Starts the local database (devkit.localdb) and `python -m worker run` as the least-privilege role
assessment_worker, waits for the worker's /ready, creates ada@example.test and grace@example.test in
auth.users if absent (what Supabase Auth sign-up does), and submits examples/assessment.json as Ada and
examples/wellbeing.json as Grace, each insert made exactly as PostgREST makes it for that user.

No Realtime server runs here, so each user's private topic user:<uid> (status changes), and the topic
assessment:<id> of each assessment submitted in this run until it is finished (its drafts: event
recommendation_streamed, one line per recommendation as the model finishes writing it), are followed the
way Realtime authorises a private channel join: reading realtime.messages AS THAT USER under RLS, with
realtime.topic set to the topic (devkit/run_local/feed.py). Whatever it started it stops on exit.

AI: OPENAI_API_KEY set means OpenAI, or any OpenAI-compatible server at OPENAI_BASE_URL. Unset (or
--ai fake) means the devkit's fake OpenAI-compatible server (devkit/fake_openai.py), started here and
streaming six recommendations at about 50 tokens/s; --ai fallback means none, and the worker's
deterministic fallback recommendations. Settings come from the environment, then `.env`.
The worker's JSON logs go to .localdb/worker.log.
"""
