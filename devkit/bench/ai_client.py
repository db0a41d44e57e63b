"""The AI client's own CPU per call: the worker's aiohttp client against the OpenAI SDK's two fastest paths.

Every variant sends the worker's real request (build_prompt of a sample assessment, strict json_schema)
to the fake server in another process and does the same work with the answer (parse the content,
validate it as a RecommendationSet), 16 calls in flight. Each variant runs in its own child process, so
its CPU (getrusage: user + system) is its own; rounds alternate the variants. This is the measurement
behind docs/decisions/0009.

    python -m devkit.bench.ai_client --variant worker --calls 3000 --url http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from devkit.bench.run import note
from devkit.processes import FakeAiProcess
from devkit.samples import assessment_model

VARIANTS = {
    "sdk_httpx2": "openai SDK, httpx2 client, client.post(cast_to=ChatCompletion) (the worker before)",
    "sdk_aiohttp_raw": "openai SDK, DefaultAioHttpClient, client.post(cast_to=httpx2.Response) + json.loads",
    "worker": "the worker's client: aiohttp directly, bounded read, storable() + validation (worker/ai_*.py)",
}
IN_FLIGHT = 16


async def _calls(call: Callable[[], Awaitable[None]], calls: int) -> float:
    """CPU seconds this process spends on `calls` calls, IN_FLIGHT at a time (after 200 warm-up calls)."""
    async def run(count: int) -> None:
        queue = iter(range(count))

        async def lane() -> None:
            for _ in queue:
                await call()

        await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))

    await run(200)
    before = resource.getrusage(resource.RUSAGE_SELF)
    await run(calls)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def _measure(variant: str, url: str, calls: int) -> float:
    from worker.ai import Recommender
    from worker.models import RecommendationSet
    from worker.prompt import build_prompt

    prompt = build_prompt(assessment_model())
    body = {"model": "fake-model", "messages": prompt.messages(), "response_format": prompt.response_format}
    if variant == "worker":
        recommender = Recommender(api_key="k", base_url=url, model="fake-model", max_connections=IN_FLIGHT)

        async def worker_call() -> None:
            await recommender.recommend(prompt)

        try:
            return await _calls(worker_call, calls)
        finally:
            await recommender.aclose()

    import httpx2
    import openai
    from openai.types.chat import ChatCompletion

    limits = httpx2.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    http = (openai.DefaultAsyncHttpxClient(limits=limits) if variant == "sdk_httpx2"
            else openai.DefaultAioHttpClient(limits=limits))
    client = openai.AsyncOpenAI(api_key="k", base_url=url, max_retries=0, http_client=http)

    async def sdk_call() -> None:
        if variant == "sdk_httpx2":
            completion: Any = await client.post("/chat/completions", cast_to=ChatCompletion, body=body)
            content = completion.choices[0].message.content
        else:
            response: Any = await client.post("/chat/completions", cast_to=httpx2.Response, body=body)
            content = json.loads(response.content)["choices"][0]["message"]["content"]
        RecommendationSet.model_validate(json.loads(content))

    try:
        return await _calls(sdk_call, calls)
    finally:
        await client.close()


def compare(calls: int, rounds: int = 2) -> dict[str, Any]:
    """Each variant `rounds` times, alternating, against one fake server; ms of CPU per call (median)."""
    note(f"AI client: {len(VARIANTS)} variants x {rounds} rounds x {calls} calls, {IN_FLIGHT} in flight")
    fake = FakeAiProcess()
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for _ in range(rounds):
            for name in VARIANTS:
                out = subprocess.run([sys.executable, "-m", "devkit.bench.ai_client", "--variant", name,
                                      "--calls", str(calls), "--url", fake.url], capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"bench: AI client variant {name} failed:\n{out.stderr[-2000:]}")
                samples[name].append(float(out.stdout) * 1000 / calls)
    finally:
        fake.stop()
    return {
        "method": f"{calls} calls per variant and round, {IN_FLIGHT} in flight, {rounds} alternating rounds, each in "
        "its own process against the fake AI in another; CPU = getrusage(RUSAGE_SELF) user + system around the "
        "calls (after 200 warm-up calls); every variant parses and validates the recommendations",
        "variants": {name: {"what": VARIANTS[name], "cpu_ms_per_call": sorted(values)[len(values) // 2],
                            "rounds": values} for name, values in samples.items()},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    print(asyncio.run(_measure(args.variant, args.url, args.calls)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
