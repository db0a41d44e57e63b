"""The fake OpenAI server as a standalone process: what the benchmark and reliability scripts rely on."""

from __future__ import annotations

import asyncio
import signal
import sys

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
