"""The AI step's HTTP transport: one POST to a Chat Completions endpoint, bounded, classified.

Contract: `ChatHttp.post(body, on_content, stream=...)` returns a `Reply`: the answer of a 200 response
and what its headers say about the provider's rate limits (worker/provider_limits.py). A streamed answer
(`stream: true` in `body`, Server-Sent Events back) is read as it arrives, `on_content` called with each
piece of content (worker/ai_stream.py), and the Reply holds the completion it adds up to; an answer in one
piece (a server that ignores `stream`) holds its body, at most MAX_RESPONSE_BYTES. With `stream`, a server
that refuses it (HTTP 400 or 422 whose error names `stream`) raises `StreamRefused`. Otherwise it raises
`AiAttemptFailed` with a reason (rate_limited, timeout, server_error, connection_error, client_error,
invalid_output) and, where the server's headers name one, the wait before another request. It never logs
the API key or the request body.

aiohttp, directly: POST `<base_url>/chat/completions` with the key as a bearer token, over a keep-alive
pool of `max_connections`, through HTTPS_PROXY when the environment names one; compressed answers are
refused, so the bound holds for what is inflated too. The OpenAI SDK is not on this path: it costs
several times the CPU per call and has no bound on what it reads (docs/decisions/0009).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from worker.ai_stream import MAX_RESPONSE_BYTES, Received, read_stream
from worker.exceptions import AiAttemptFailed, StreamRefused
from worker.provider_limits import RateLimits, retry_after_seconds

OPENAI_BASE_URL = "https://api.openai.com/v1"
# What is read of a refusal (HTTP 400 or 422) to see whether it is about `stream`.
MAX_ERROR_BYTES = 16 * 1024
# `stream` or `stream_options` as a word of an error message ("upstream" is not one).
_STREAM_WORD = re.compile(r"\bstream(_options)?\b")


class ChatHttp:
    """POSTs Chat Completions requests to `base_url` with `api_key`; `configured` is False without a key."""

    def __init__(self, *, api_key: str | None, base_url: str | None, max_connections: int) -> None:
        self.url = (base_url or OPENAI_BASE_URL).rstrip("/") + "/chat/completions"
        self.max_connections = max_connections
        # Without a key nothing is sent: the caller fails fast with not_configured.
        self._headers = {
            "Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
            # Compressed answers are refused, so nothing can inflate past MAX_RESPONSE_BYTES unseen.
            "Accept-Encoding": "identity",
        } if api_key else None
        # Read once: aiohttp's trust_env=True reads the environment and ~/.netrc in a thread on every
        # request, which tripled the client's CPU per call.
        self._proxy = proxy_for(self.url)
        if self._proxy and self._headers and self.url.startswith("http:"):
            # aiohttp sends proxy_headers only on an https tunnel's CONNECT; a plain request carries its own.
            self._headers |= self._proxy.headers
        self._session: aiohttp.ClientSession | None = None

    @property
    def configured(self) -> bool:
        return self._headers is not None

    async def aclose(self) -> None:
        """Closes the HTTP connections; the transport must not be used afterwards."""
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the running event loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30),
                auto_decompress=False,
            )
        return self._session

    async def post(self, body: bytes, on_content: Callable[[str], None] | None = None, *,
                   stream: bool = False, received: Received | None = None) -> Reply:
        """One HTTP attempt; the 200 response's answer (module docstring), else AiAttemptFailed."""
        assert self._headers is not None, "post() needs an API key; check `configured` first"
        try:
            request = self._http().post(self.url, data=body, headers=self._headers, allow_redirects=False,
                                        proxy=self._proxy.url if self._proxy else None,
                                        proxy_headers=self._proxy.headers if self._proxy else None)
            async with request as response:
                if stream and response.status in (400, 422) and await _refuses_stream(response):
                    raise StreamRefused(f"The AI endpoint answered HTTP {response.status} to `stream`")
                if response.status != 200:
                    raise status_failure(response.status, response.headers)
                if response.headers.get("Content-Encoding", "identity").lower() != "identity":
                    raise AiAttemptFailed("invalid_output", "The AI endpoint sent a compressed answer unasked",
                                          retryable=True)
                limits = RateLimits.from_headers(response.headers)
                if response.content_type == "text/event-stream":
                    return Reply(b"", limits, await read_stream(response.content.iter_any(), on_content, received))
                if (response.content_length or 0) > MAX_RESPONSE_BYTES:
                    raise _too_large()
                payload = bytearray()
                async for chunk in response.content.iter_any():
                    payload += chunk
                    if len(payload) > MAX_RESPONSE_BYTES:
                        raise _too_large()
                return Reply(bytes(payload), limits)
        except (aiohttp.ClientError, OSError) as exc:
            raise AiAttemptFailed(
                "connection_error", f"Could not reach the AI endpoint ({type(exc).__name__})", retryable=True
            ) from exc


@dataclass(frozen=True)
class Reply:
    """A 200 answer: its body (empty when streamed), the provider's rate-limit headers read, and the
    completion a stream added up to (None when the answer came in one piece)."""

    payload: bytes
    limits: RateLimits
    streamed: dict[str, Any] | None = None


async def _refuses_stream(response: aiohttp.ClientResponse) -> bool:
    """Whether an HTTP 400 or 422 says the server does not take `stream` (or `stream_options`): OpenAI-style
    servers name the parameter in `error.param` or in the message."""
    body = bytearray()
    while len(body) < MAX_ERROR_BYTES and (part := await response.content.read(MAX_ERROR_BYTES - len(body))):
        body += part  # read() returns what has arrived: a body sent in pieces is read to its end
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, RecursionError):
        return False
    if isinstance(error, str):
        return bool(_STREAM_WORD.search(error))
    if not isinstance(error, dict):
        return False
    return error.get("param") in ("stream", "stream_options") or bool(
        _STREAM_WORD.search(str(error.get("message") or "")))


@dataclass(frozen=True)
class Proxy:
    url: str  # without credentials
    headers: dict[str, str] = field(repr=False)  # Proxy-Authorization when the proxy's URL carries credentials


def proxy_for(url: str) -> Proxy | None:
    """The proxy the environment names for `url` (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, unless NO_PROXY
    exempts its host), as the OpenAI SDK's httpx client would use it; None for a direct connection."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    named = proxies.get(parts.scheme) or proxies.get("all")
    if not named:
        return None
    proxy = urllib.parse.urlsplit(named if "://" in named else f"http://{named}")
    headers = {}
    if proxy.username is not None:
        login = urllib.parse.unquote(proxy.username)
        password = urllib.parse.unquote(proxy.password or "")
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
    host = proxy.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{proxy.port}" if proxy.port else "")
    return Proxy(urllib.parse.urlunsplit((proxy.scheme, netloc, proxy.path, "", "")), headers)


def _too_large() -> AiAttemptFailed:
    return AiAttemptFailed("invalid_output", f"The AI endpoint's response is over {MAX_RESPONSE_BYTES} bytes",
                           retryable=True)


def status_failure(status: int, headers: Mapping[str, str]) -> AiAttemptFailed:
    """What an HTTP status other than 200 means for the attempt (and whether another may help)."""
    what = f"The AI endpoint answered HTTP {status}"
    if status == 429:
        # retry-after-ms / Retry-After, or the wait its x-ratelimit-* headers imply, whichever is longer.
        return AiAttemptFailed("rate_limited", f"{what} (rate limited)", retryable=True,
                               wait=RateLimits.from_headers(headers).pause_seconds(1))
    if status == 408:
        return AiAttemptFailed("timeout", f"{what} (request timeout)", retryable=True)
    if status >= 500:
        return AiAttemptFailed("server_error", f"{what} (server error)", retryable=True,
                               wait=retry_after_seconds(headers))
    hint = " Check OPENAI_API_KEY." if status in (401, 403) else " Check OPENAI_BASE_URL, the model and the request."
    return AiAttemptFailed("client_error", f"{what}; retrying will not help.{hint}", retryable=False)
