"""Command line: `python -m worker run | stats | dlq list | dlq requeue (ID | --all)`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from dotenv import load_dotenv

from worker import logs
from worker.ai import Recommender
from worker.ai_answer import Prices
from worker.config import Settings, load_settings
from worker.consumer import Consumer
from worker.db import Database
from worker.exceptions import ConfigError, WorkerError
from worker.ops import OpsServer, routes

log = logging.getLogger("worker")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="consume assessment_submitted until SIGTERM/SIGINT")
    run.add_argument("--concurrency", type=int, help="jobs in flight (default WORKER_CONCURRENCY or 16)")
    commands.add_parser("stats", help="queue depth, oldest message age, assessments by status, AI use today")
    dlq = commands.add_parser("dlq", help="inspect or requeue dead-lettered jobs")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="list dead-lettered jobs")
    dlq_list.add_argument("--limit", type=int, default=100)
    requeue = dlq_commands.add_parser("requeue", help="put dead-lettered jobs back on the queue")
    target = requeue.add_mutually_exclusive_group(required=True)
    target.add_argument("msg_id", nargs="?", type=int, help="dead-letter message id (see dlq list)")
    target.add_argument("--all", action="store_true", help="requeue every dead-lettered job")
    return parser.parse_args(argv)


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    db = await Database.open(settings.database_url)
    recommender = Recommender(
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        deadline_seconds=settings.ai_deadline_seconds,
        max_connections=settings.concurrency,
        prices=Prices(settings.ai_price_prompt_per_1k_tokens_usd, settings.ai_price_completion_per_1k_tokens_usd),
        max_completion_tokens=settings.ai_max_completion_tokens,
        end_user_key=settings.ai_user_id_hmac_key.get_secret_value().encode() if settings.ai_user_id_hmac_key else None,
        stream=settings.ai_stream,
    )
    consumer = Consumer(settings, db, recommender)
    ops = OpsServer(routes(alive=lambda: consumer.running, not_ready_reason=consumer.health.not_ready_reason))
    try:
        # Serve /health before taking any job, so a taken port fails the start instead of a running worker.
        try:
            await ops.start(settings.ops_host, settings.ops_port)
        except OSError as exc:
            raise ConfigError(
                f"Cannot serve /health on {settings.ops_host}:{settings.ops_port}: "
                f"{os.strerror(exc.errno) if exc.errno else exc}. "
                "Set WORKER_OPS_PORT to a free port."
            ) from exc
        await consumer.run(stop)
    finally:
        await ops.close()
        await recommender.aclose()
        await db.close()


async def stats(settings: Settings) -> None:
    db = await Database.open(settings.database_url, size=1)
    try:
        for queue in await db.queue_metrics():
            age = "-" if queue.oldest_age_seconds is None else f"{queue.oldest_age_seconds:.0f}s"
            print(f"queue {queue.queue_name}: {queue.length} messages, oldest {age}")
        counts = await db.status_counts()
        for status in ("queued", "processing", "completed", "failed"):
            print(f"assessments {status}: {counts.get(status, 0)}")
        usage = await db.ai_usage_today()
        budget = f" of AI_DAILY_BUDGET_USD={settings.ai_daily_budget_usd:g}" if settings.ai_daily_budget_usd else ""
        print(f"AI today (UTC): {usage.requests} requests, {usage.tokens} tokens, ${usage.cost_usd:.4f}{budget}")
    finally:
        await db.close()


async def dlq(settings: Settings, args: argparse.Namespace) -> None:
    db = await Database.open(settings.database_url, size=1)
    try:
        if args.dlq_command == "list":
            for row in await db.dlq_list(args.limit):
                print(json.dumps({"msg_id": row["msg_id"], "enqueued_at": row["enqueued_at"].isoformat(),
                                  **row["message"]}, default=str))
            return
        ids = await db.dlq_ids() if args.all else [args.msg_id]
        for msg_id in ids:
            outcome = await db.dlq_requeue(msg_id)
            if not outcome["found"]:
                raise WorkerError(f"No dead-lettered job with msg_id {msg_id!r}. Run 'python -m worker dlq list'.")
            if outcome["new_msg_id"] is None:
                status = outcome["assessment_status"]
                why = ("its event names no assessment (an invalid event: nothing to requeue)" if status is None
                       else f"its assessment is {status}, not failed (requeueing would start a second job)")
                if not args.all:
                    raise WorkerError(f"Dead letter {msg_id} was left in place: {why}.")
                print(f"left dead letter {msg_id} in place: {why}")
                continue
            print(f"requeued dead letter {msg_id} as job {outcome['new_msg_id']}")
        if not ids:
            print("the dead-letter queue is empty")
    finally:
        await db.close()


def env_files(cwd: Path | None = None, package_dir: Path | None = None) -> list[Path]:
    """The `.env` files to read, the first one winning: the working directory's, then, in a checkout
    (worker/ next to pyproject.toml, not an installed wheel), the repository root's."""
    package_dir = Path(__file__).resolve().parent if package_dir is None else package_dir
    candidates = [(Path.cwd() if cwd is None else cwd) / ".env"]
    if (package_dir.parent / "pyproject.toml").is_file():
        candidates.append(package_dir.parent / ".env")
    found: list[Path] = []
    for path in candidates:
        if path.is_file() and all(not path.samefile(seen) for seen in found):
            found.append(path)
    return found


def load_env_files(cwd: Path | None = None, package_dir: Path | None = None) -> list[Path]:
    """Read `env_files()` into the environment. Variables already set win (the platform's secrets), then
    the working directory's `.env`, then the repository root's (docs/deployment.md, "Configuration")."""
    files = env_files(cwd, package_dir)
    for path in files:
        load_dotenv(path, override=False)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    load_env_files()
    try:
        settings = load_settings(concurrency=getattr(args, "concurrency", None))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    try:
        if args.command == "run":
            raise_open_files_limit()
            settle_garbage_collector()
            asyncio.run(_run_until_signalled(settings))
        elif args.command == "stats":
            asyncio.run(stats(settings))
        else:
            asyncio.run(dlq(settings, args))
    except StoppedAtOnce as exc:
        return 128 + exc.signum  # the shell's convention for "ended by this signal"
    except WorkerError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def raise_open_files_limit() -> None:
    """Use the whole hard limit of open files: every job holds an AI connection and the pool its own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:  # a platform that refuses: run with what we have
            log.warning("could not raise the open-files limit", extra={"soft": soft, "error": str(exc)})


def settle_garbage_collector() -> None:
    """What is loaded at start lives as long as the process: keep the collector from rescanning it, and
    let it run less often (a job's objects are freed by reference counting, not by the collector)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


class StoppedAtOnce(Exception):
    """A second SIGTERM/SIGINT: the worker stopped without finishing its jobs (they are redelivered)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def _run_until_signalled(settings: Settings) -> None:
    """The first SIGTERM/SIGINT asks for a graceful stop; a second one stops now: jobs in flight are
    cancelled and come back to the queue when their leases end."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    second: list[int] = []

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            log.info("stopping: finishing jobs in flight (signal again to stop at once)",
                     extra={"signal": signal.Signals(signum).name})
            stop.set()
        elif not second:
            log.warning("second signal: stopping at once; jobs in flight return when their leases end",
                        extra={"signal": signal.Signals(signum).name})
            second.append(signum)
            main.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await run_worker(settings, stop)
    except asyncio.CancelledError:
        if second:
            raise StoppedAtOnce(second[0]) from None
        raise


if __name__ == "__main__":
    sys.exit(main())
