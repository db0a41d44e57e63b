"""The fake OpenAI server as a standalone process: what the benchmark and reliability scripts rely on."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.error
import urllib.request

from devkit.processes import FakeAiProcess
from tests.factories import assessment
from worker.ai import Recommender
from worker.exceptions import AiUnavailable
from worker.prompt import build_prompt


async def test_fake_openai_process_prints_its_url_serves_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devkit.fake_openai", "--port", "0", "--latency", "0.05",
        "--fail-rate", "0.5", "--seed", "3",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        base_url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        recommender = Recommender(api_key="k", base_url=base_url, model="m", max_tries=1)
        outcomes: list[str] = []
        try:
            for _ in range(12):
                try:
                    await recommender.recommend(build_prompt(assessment()))
                    outcomes.append("ok")
                except AiUnavailable as exc:
                    outcomes.append(exc.reason)
        finally:
            await recommender.aclose()
        # With a 50% failure rate both outcomes appear, and failures are the injected 500s.
        assert set(outcomes) == {"ok", "server_error"}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_fake_openai_process_enforces_a_rate_limit_with_openais_headers_and_error() -> None:
    """What the benchmark's provider_limit section and tests/processes/test_provider_limits.py rely on."""
    ai = FakeAiProcess(requests_per_minute=60, tokens_per_minute=100_000)
    try:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 400}],
                           "max_completion_tokens": 1000}).encode()
        answers = []
        for _ in range(2):
            request = urllib.request.Request(ai.url + "/chat/completions", data=body, method="POST", headers={
                "Authorization": "Bearer k", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    answers.append((response.status, response.headers, json.loads(response.read())))
            except urllib.error.HTTPError as refused:
                answers.append((refused.code, refused.headers, json.loads(refused.read())))
        stats = ai.stats()
    finally:
        ai.stop()
    (ok, ok_headers, _), (limited, headers, error) = answers
    assert (ok, limited) == (200, 429)
    assert ok_headers["x-ratelimit-limit-requests"] == "60" and ok_headers["x-ratelimit-remaining-requests"] == "0"
    assert ok_headers["x-ratelimit-reset-requests"] == "1s"
    assert ok_headers["x-ratelimit-limit-tokens"] == "100000"
    assert ok_headers["x-ratelimit-remaining-tokens"] == str(100_000 - 100 - 1000)  # 400 characters + the cap
    assert 900 <= int(headers["retry-after-ms"]) <= 1000 and headers["Retry-After"] == "1"
    assert error["error"]["code"] == "rate_limit_exceeded" and error["error"]["type"] == "requests"
    assert error["error"]["message"].startswith("Rate limit reached for m in organization org-fake on requests per "
                                                "min (RPM): Limit 60")
    assert (stats["requests"], stats["completed"], stats["rate_limited"]) == (2, 1, 1)
