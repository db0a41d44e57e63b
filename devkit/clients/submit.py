"""Submit an assessment as a user and wait for its recommendations, pushed by Realtime.

    SUPABASE_URL=https://<ref>.supabase.co SUPABASE_ANON_KEY=... \\
      scripts/submit examples/assessment.json --email me@example.com --password ...

Signs in with email and password, inserts the assessment (RLS applies as the user), joins the private
Broadcast channel assessment:<id>, prints every status change, then the recommendations (read from
result_test). Exit status: 0 completed, 1 failed or refused, 2 bad settings, 3 timed out.
Needs a Supabase project (Auth, PostgREST and Realtime): the local database has no Realtime server.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from supabase import AsyncClient

from devkit.clients.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    ConfigError,
    SubmitConfig,
    describe_event,
    format_result,
    load_assessment,
    parse_submit_args,
)
from devkit.clients.session import join_status_topic, row_of, run, sign_in


async def follow(client: AsyncClient, assessment_id: str) -> str:
    """Wait for a final status on assessment:<id> and return it (the caller bounds the wait)."""
    final: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_status(message: Any) -> None:
        line = describe_event(message)
        print(line.text, flush=True)
        if line.is_final and line.assessment_id == assessment_id and not final.done():
            final.set_result(line.status or "")

    channel = await join_status_topic(client, f"assessment:{assessment_id}", on_status)
    # A broadcast is a notification; the row is the truth. The worker may have moved on between the
    # insert and the join (or a broadcast was lost): read the status once now that we are listening.
    row = await client.table("test_assessment").select("status, attempts").eq("id", assessment_id).single().execute()
    current = row_of(row.data)
    print(f"current status: {current['status']} (attempt {current['attempts']})", flush=True)
    if current["status"] in ("completed", "failed") and not final.done():
        final.set_result(current["status"])
    try:
        return await final
    finally:
        await client.remove_channel(channel)


def read_assessment(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the assessment file {path!r}: {exc.strerror}.") from None
    return load_assessment(text, path)


async def submit(config: SubmitConfig, body: dict[str, Any]) -> int:
    client, _ = await sign_in(config.connection)
    try:
        inserted = await client.table("test_assessment").insert(body).execute()
        assessment_id = str(row_of(inserted.data)["id"])
        print(f"submitted assessment {assessment_id}; waiting up to {config.timeout:g} s", flush=True)
        try:
            async with asyncio.timeout(config.timeout):
                status = await follow(client, assessment_id)
        except TimeoutError:
            print(f"timed out after {config.timeout:g} s; the assessment keeps processing", file=sys.stderr)
            return EXIT_TIMEOUT
        if status == "failed":
            row = await client.table("test_assessment").select("last_error").eq("id", assessment_id).single().execute()
            print(f"assessment failed: {row_of(row.data).get('last_error') or 'no reason recorded'}", file=sys.stderr)
            return EXIT_FAILED
        result = (
            await client.table("result_test").select("*").eq("assessment_id", assessment_id).maybe_single().execute()
        )
        if result is None or not result.data:
            print("completed, but no result is visible to this user", file=sys.stderr)
            return EXIT_FAILED
        print(format_result(row_of(result.data)), flush=True)
        return EXIT_OK
    finally:
        await client.realtime.close()
        await client.auth.sign_out()


def main(argv: list[str]) -> int:
    try:
        config = parse_submit_args(argv, os.environ)
        body = read_assessment(config.assessment_file)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(submit(config, body), config.connection.url)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
