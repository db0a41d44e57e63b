#!/usr/bin/env python3
"""Follow all of a user's assessments: print every status change broadcast on user:<uid>.

    SUPABASE_URL=https://<ref>.supabase.co SUPABASE_ANON_KEY=... \\
      .venv/bin/python scripts/watch.py --email me@example.com --password ... [--timeout 300]

Runs until Ctrl-C (or --timeout). Exit status: 0 stopped normally, 1 refused, 2 bad settings.
Needs a Supabase project (Auth and Realtime): the local database has no Realtime server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import httpx
from client_output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    STATUS_EVENTS,
    ConfigError,
    WatchConfig,
    describe_event,
    parse_watch_args,
)
from realtime.types import RealtimeChannelOptions, RealtimeSubscribeStates
from supabase import acreate_client
from supabase_auth.errors import AuthError

# Broadcast from Database sends to private topics: joining one is authorised by RLS on realtime.messages.
PRIVATE_CHANNEL: RealtimeChannelOptions = {"config": {"broadcast": None, "presence": None, "private": True}}


async def run(config: WatchConfig) -> int:
    client = await acreate_client(config.connection.url, config.connection.anon_key)
    auth = await client.auth.sign_in_with_password(
        {"email": config.connection.email, "password": config.connection.password}
    )
    if auth.session is None or auth.user is None:
        raise AuthError("sign-in returned no session (is the email confirmed?)", None)
    await client.realtime.set_auth(auth.session.access_token)
    topic = f"user:{auth.user.id}"
    joined: dict[str, Any] = {}

    def on_status(message: Any) -> None:
        print(describe_event(message).text, flush=True)

    def on_subscribe(state: RealtimeSubscribeStates, error: Exception | None) -> None:
        joined["state"], joined["error"] = state, error
        if state != RealtimeSubscribeStates.SUBSCRIBED:
            print(f"channel {topic}: {state.value} {error or ''}".rstrip(), file=sys.stderr, flush=True)

    channel = client.channel(topic, PRIVATE_CHANNEL)
    for event in STATUS_EVENTS:
        channel.on_broadcast(event, on_status)
    try:
        await channel.subscribe(on_subscribe)
        if joined.get("state") != RealtimeSubscribeStates.SUBSCRIBED:
            print(
                f"error: could not join private channel {topic}. Check that the policy on realtime.messages "
                "is deployed and the user is signed in.",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(f"watching {topic} (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(config.timeout):
                await asyncio.Event().wait()  # callbacks print; this only keeps the loop alive
        return EXIT_OK
    finally:
        await client.remove_all_channels()
        await client.auth.sign_out()


def main(argv: list[str]) -> int:
    try:
        config = parse_watch_args(argv, os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(run(config))
    except KeyboardInterrupt:
        return EXIT_OK
    except AuthError as exc:
        print(
            f"error: sign-in failed: {exc}. Check SUPABASE_URL, --email/--password and that the user exists.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except httpx.HTTPError as exc:
        print(f"error: cannot reach {config.connection.url}: {exc}. Check SUPABASE_URL.", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
