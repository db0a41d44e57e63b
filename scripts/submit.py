#!/usr/bin/env python3
"""Submit an assessment as a user and wait for its recommendations, pushed by Realtime.

    SUPABASE_URL=https://<ref>.supabase.co SUPABASE_ANON_KEY=... \\
      .venv/bin/python scripts/submit.py examples/career.json --email me@example.com --password ...

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

import httpx
from client_output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    STATUS_EVENTS,
    ConfigError,
    EventLine,
    SubmitConfig,
    describe_event,
    format_api_error,
    format_result,
    load_assessment,
    parse_submit_args,
)
from postgrest.exceptions import APIError
from realtime.types import RealtimeChannelOptions, RealtimeSubscribeStates
from supabase import AsyncClient, acreate_client
from supabase_auth.errors import AuthError

# Broadcast from Database sends to private topics: joining one is authorised by RLS on realtime.messages.
PRIVATE_CHANNEL: RealtimeChannelOptions = {"config": {"broadcast": None, "presence": None, "private": True}}


def row_of(data: object) -> dict[str, Any]:
    """The row in a PostgREST response (an object, or the first of a list)."""
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        raise RuntimeError(f"unexpected response from the API: {data!r}")
    return data


async def sign_in(config: SubmitConfig) -> AsyncClient:
    client = await acreate_client(config.connection.url, config.connection.anon_key)
    auth = await client.auth.sign_in_with_password(
        {"email": config.connection.email, "password": config.connection.password}
    )
    if auth.session is None:
        raise AuthError("sign-in returned no session (is the email confirmed?)", None)
    # Private channels are authorised with the user's JWT, not the anon key: set it before joining.
    await client.realtime.set_auth(auth.session.access_token)
    return client


async def follow(client: AsyncClient, assessment_id: str) -> str:
    """Wait for a final status on assessment:<id> and return it (the caller bounds the wait)."""
    final: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    joined: dict[str, Any] = {}

    def on_status(message: Any) -> None:
        line: EventLine = describe_event(message)
        print(line.text, flush=True)
        if line.is_final and line.assessment_id == assessment_id and not final.done():
            final.set_result(line.status or "")

    def on_subscribe(state: RealtimeSubscribeStates, error: Exception | None) -> None:
        joined["state"], joined["error"] = state, error

    channel = client.channel(f"assessment:{assessment_id}", PRIVATE_CHANNEL)
    for event in STATUS_EVENTS:
        channel.on_broadcast(event, on_status)
    await channel.subscribe(on_subscribe)
    if joined.get("state") != RealtimeSubscribeStates.SUBSCRIBED:
        raise RuntimeError(
            f"could not join private channel assessment:{assessment_id} ({joined.get('state')}: "
            f"{joined.get('error')}). Check that Realtime's 'Allow public access' setting and the policy "
            "on realtime.messages are deployed."
        )

    # The worker may have moved on between the insert and the join: catch up from the table once.
    row = (
        await client.table("test_assessment")
        .select("status, attempts, last_error")
        .eq("id", assessment_id)
        .single()
        .execute()
    )
    current = row_of(row.data)
    status = current["status"]
    print(f"current status: {status} (attempt {current['attempts']})", flush=True)
    if status in ("completed", "failed") and not final.done():
        final.set_result(status)
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


async def run(config: SubmitConfig, body: dict[str, Any]) -> int:
    client = await sign_in(config)
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
            row = (
                await client.table("test_assessment")
                .select("last_error")
                .eq("id", assessment_id)
                .single()
                .execute()
            )
            reason = row_of(row.data).get("last_error") or "no reason recorded"
            print(f"assessment failed: {reason}", file=sys.stderr)
            return EXIT_FAILED
        result = (
            await client.table("result_test")
            .select("*")
            .eq("assessment_id", assessment_id)
            .maybe_single()
            .execute()
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
    try:
        return asyncio.run(run(config, body))
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {config.connection.url}: {exc}. Check SUPABASE_URL.", file=sys.stderr)
        return EXIT_FAILED
    except APIError as exc:
        print(format_api_error(exc.json()), file=sys.stderr)
        return EXIT_FAILED
    except AuthError as exc:
        print(
            f"error: sign-in failed: {exc}. Check SUPABASE_URL, --email/--password and that the user exists.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
