"""A user's session on a Supabase project, as supabase-js gives a frontend: sign in, join a private topic.

Private Broadcast topics are authorised with the user's JWT (RLS on realtime.messages), so the token is
handed to Realtime before any join. `run` turns every failure the tools expect into one line that says
what to check, and an exit status.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from postgrest.exceptions import APIError
from realtime import AsyncRealtimeChannel
from realtime.types import RealtimeChannelOptions, RealtimeSubscribeStates
from supabase import AsyncClient, acreate_client
from supabase_auth.errors import AuthError

from devkit.clients.output import EXIT_FAILED, EXIT_OK, Connection, format_api_error
from worker.events import STATUS_EVENT_TYPES

PRIVATE_CHANNEL: RealtimeChannelOptions = {"config": {"broadcast": None, "presence": None, "private": True}}


class ClientError(Exception):
    """An expected failure of a client tool; the message says what to check."""


class ChannelRefused(ClientError):
    """Realtime did not let the user join a private topic."""


def row_of(data: object) -> dict[str, Any]:
    """The row in a PostgREST response (an object, or the first of a list)."""
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        raise ClientError(f"unexpected response from the API: {data!r}")
    return data


async def sign_in(connection: Connection) -> tuple[AsyncClient, str]:
    """A client signed in as the user, with Realtime authorised by the user's JWT; and the user's id."""
    client = await acreate_client(connection.url, connection.anon_key)
    auth = await client.auth.sign_in_with_password({"email": connection.email, "password": connection.password})
    if auth.session is None or auth.user is None:
        raise AuthError("sign-in returned no session (is the email confirmed?)", None)
    await client.realtime.set_auth(auth.session.access_token)
    return client, auth.user.id


async def join_status_topic(
    client: AsyncClient, topic: str, on_event: Callable[[Any], None]
) -> AsyncRealtimeChannel:
    """Join private `topic` with `on_event` for every status event; ChannelRefused unless the join succeeds.

    realtime >= 2.34 resolves subscribe() only once Realtime has answered the join (older releases
    return before the reply, which this check would then misreport as a refusal).
    """
    joined: dict[str, Any] = {}

    def on_subscribe(state: RealtimeSubscribeStates, error: Exception | None) -> None:
        joined["state"], joined["error"] = state, error

    channel = client.channel(topic, PRIVATE_CHANNEL)
    for event in STATUS_EVENT_TYPES:
        channel.on_broadcast(event, on_event)
    await channel.subscribe(on_subscribe)
    if joined.get("state") != RealtimeSubscribeStates.SUBSCRIBED:
        await client.remove_channel(channel)
        raise ChannelRefused(
            f"could not join private channel {topic} ({joined.get('state')}: {joined.get('error')}). Check that "
            "the policy on realtime.messages is deployed, the user is signed in and owns the topic."
        )
    return channel


def run(main: Coroutine[Any, Any, int], url: str) -> int:
    """Run a tool's coroutine; expected failures become a message on stderr and EXIT_FAILED."""
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        return EXIT_OK
    except AuthError as exc:
        message = f"sign-in failed: {exc}. Check SUPABASE_URL, --email/--password and that the user exists."
    except httpx.HTTPError as exc:
        message = f"cannot reach {url}: {exc}. Check SUPABASE_URL."
    except APIError as exc:
        print(format_api_error(exc.json()), file=sys.stderr)
        return EXIT_FAILED
    except ClientError as exc:
        message = str(exc)
    print(f"error: {message}", file=sys.stderr)
    return EXIT_FAILED
