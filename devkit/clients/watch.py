"""Follow all of a user's assessments: print every status change broadcast on user:<uid>.

    SUPABASE_URL=https://<ref>.supabase.co SUPABASE_ANON_KEY=... \\
      scripts/watch --email me@example.com --password ... [--timeout 300]

Runs until Ctrl-C (or --timeout). Exit status: 0 stopped normally, 1 refused, 2 bad settings.
Needs a Supabase project (Auth and Realtime): the local database has no Realtime server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

from devkit.clients.output import EXIT_OK, EXIT_USAGE, ConfigError, WatchConfig, describe_event, parse_watch_args
from devkit.clients.session import join_status_topic, run, sign_in


async def watch(config: WatchConfig) -> int:
    client, user_id = await sign_in(config.connection)
    topic = f"user:{user_id}"

    def on_status(message: Any) -> None:
        print(describe_event(message).text, flush=True)

    try:
        await join_status_topic(client, topic, on_status)
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
    return run(watch(config), config.connection.url)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
