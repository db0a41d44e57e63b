"""`make run` (scripts/run-local): start, submit, follow, stop. See devkit/run_local/__init__.py."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from dotenv import load_dotenv

from devkit import REPO, localdb
from devkit.processes import FakeAiProcess, WorkerExited, WorkerProcess
from devkit.run_local import __doc__ as USAGE
from devkit.run_local.display import clock, draft_line, result_block, say, status_line
from devkit.run_local.feed import Refused, User
from devkit.samples import EXAMPLES
from devkit.users import ensure_user

WORKER_LOG = localdb.STATE_DIR / "worker.log"
POLL_SECONDS = 0.1
STOP_TIMEOUT_SECONDS = 30.0
SAMPLES = (  # (email, name, assessment file)
    ("ada@example.test", "ada", EXAMPLES / "assessment.json"),
    ("grace@example.test", "grace", EXAMPLES / "wellbeing.json"),
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3

# The fake AI (--ai fake): about 50 tokens a second, six recommendations (about 1,900 characters: some 10 s,
# well within the worker's AI_DEADLINE_SECONDS of 25).
FAKE_CHARS_PER_SECOND = 200
FAKE_RECOMMENDATIONS = 6
FAKE_MODEL = "fake-model"


class RunError(Exception):
    """A step failed; the message says what to do."""


class Stop(Exception):
    """SIGINT or SIGTERM arrived."""


@dataclass
class Started:
    """What this run started, and so must stop."""

    database: bool = False
    ai: FakeAiProcess | None = None
    worker: WorkerProcess | None = None


def ops_port() -> int:
    raw = os.environ.get("WORKER_OPS_PORT", "").strip() or "3005"
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise RunError(f"WORKER_OPS_PORT={raw!r} is not a port number. Set a port such as 3005 (0 is not "
                       "allowed here: run-local must know where /ready is).")
    port = int(raw)
    with socket.socket() as probe:
        # As the worker binds: SO_REUSEADDR, so connections of an earlier run in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise RunError(f"Port {port} is in use (another worker?). Stop it, or run with "
                           f"WORKER_OPS_PORT={port + 100} make run.") from None
    return port


def has_key() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY", "").strip())


def ai_mode(requested: str | None) -> str:
    """"key" (OPENAI_API_KEY's model), "fake" or "fallback": --ai wins, else the key if set, else the fake."""
    return requested or ("key" if has_key() else "fake")


def describe_ai(mode: str, fake_url: str = "") -> str:
    if mode == "fake":
        return (f"the devkit's fake OpenAI at {fake_url}, streaming at about {FAKE_CHARS_PER_SECOND // 4} tokens/s "
                "(set OPENAI_API_KEY to use a real model; --ai fallback for none)")
    if mode == "fallback":
        return "fallback recommendations (--ai fallback)"
    model = os.environ.get("OPENAI_MODEL", "").strip() or "gpt-4o-mini"
    base_url = os.environ.get("OPENAI_BASE_URL", "").strip() or "api.openai.com"
    return f"{model} at {base_url}"


def ai_environment(mode: str, started: Started) -> dict[str, str]:
    """The worker's AI settings for `mode`; starts the fake AI for "fake"."""
    if mode == "fallback":
        return {"OPENAI_API_KEY": ""}
    if mode != "fake":
        return {}
    # A Ctrl-C in the terminal signals the whole foreground process group, but the fake must outlive the
    # worker's drain (stop() ends it after the worker): it starts with SIGINT blocked, which a child keeps
    # across exec. Blocked here too until started.ai is set, so a Ctrl-C now cannot leave it running.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        started.ai = FakeAiProcess(chars_per_second=FAKE_CHARS_PER_SECOND, recommendations=FAKE_RECOMMENDATIONS)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if not started.ai.url:
        raise RunError(f"The fake AI (python -m devkit.fake_openai) did not start: exit status "
                       f"{started.ai.process.poll()}; its error is above.")
    # Any non-empty key; no cache: a cached answer of the fake would skip the stream there is to watch.
    return {"OPENAI_API_KEY": "fake-key-for-make-run", "OPENAI_BASE_URL": started.ai.url,
            "OPENAI_MODEL": FAKE_MODEL, "CACHE_TTL_SECONDS": "0"}


def follow(users: list[User], pending: dict[str, User], types: dict[str, str], once: bool, timeout: float,
           worker: WorkerProcess, database_started: bool) -> int:
    """Print status changes until the samples finish (--once) or until a signal (Stop)."""
    deadline = time.monotonic() + timeout
    failed = 0
    announced = False
    while True:
        if worker.process.poll() is not None:
            raise RunError(f"The worker exited with status {worker.process.returncode}. Last lines of "
                           f"{WORKER_LOG}:\n{worker.log_tail()}")
        arrived = [(row, user) for user in users for row in user.new_messages()]
        # Drafts after the status events: a draft is committed before its assessment's completion, so every
        # draft of an assessment whose completion was just read is read now too.
        arrived += [(row, user) for user in users for row in user.new_drafts()]
        # The topics interleave: print in the order things happened.
        arrived.sort(key=lambda item: (item[0]["inserted_at"], str(_field(item[0]["payload"], "occurred_at")),
                                       str(_field(item[0]["payload"], "index"))))
        for row, user in arrived:
            assessment_id = _field(row["payload"], "assessment_id")
            if row["event"] == "recommendation_streamed":
                say(draft_line(user.name, types.get(str(assessment_id), ""), row["payload"]))
                continue
            if isinstance(assessment_id, str) and assessment_id not in types:
                types[assessment_id] = user.assessment_type(assessment_id)  # submitted outside this run
            kind = types.get(str(assessment_id), "")
            text, status, assessment_id = status_line(user.name, kind, row["payload"])
            say(text)
            if assessment_id is None or status not in ("completed", "failed"):
                continue
            user.unfollow_drafts(assessment_id)
            if status == "completed":
                say(result_block(user.email, kind, assessment_id, user.result(assessment_id)))
            else:
                failed += assessment_id in pending
                say(f"\n  {user.email}: assessment {assessment_id[:8]} failed: {user.last_error(assessment_id)}\n")
            pending.pop(assessment_id, None)
        if not pending:
            if once:
                return EXIT_FAILED if failed else EXIT_OK
            if not announced:
                say("All samples are done. Still following the users' topics (insert more assessments as "
                    "ada or grace to see them here).\nPress Ctrl-C to stop the worker"
                    + (" and the database." if database_started else "."))
                announced = True
        elif once and time.monotonic() > deadline:
            waiting = ", ".join(f"{u.name} {a[:8]}" for a, u in pending.items())
            say(f"Timed out after {timeout:g} s waiting for: {waiting}. See {WORKER_LOG}.")
            return EXIT_TIMEOUT
        time.sleep(POLL_SECONDS)


def _field(payload: object, key: str) -> object:
    return payload.get(key) if isinstance(payload, dict) else None


def run(args: argparse.Namespace, started: Started) -> int:
    port = ops_port()
    if localdb.running():
        say("Using the local database that is already running (scripts/localdb up applies new migrations) ...")
    else:
        say("Starting the local database (scripts/localdb up) ...")
        started.database = True
    admin_url = localdb.up()
    say(f"  database: {admin_url}")
    mode = ai_mode(args.ai)
    ai_settings = ai_environment(mode, started)
    say(f"Starting the worker as assessment_worker; AI: {describe_ai(mode, ai_settings.get('OPENAI_BASE_URL', ''))}")
    started.worker = worker = WorkerProcess(
        WORKER_LOG, {"DATABASE_URL": localdb.url("assessment_worker"), "WORKER_OPS_PORT": str(port)} | ai_settings,
        new_session=True)
    try:
        worker.wait_ready()
    except WorkerExited as exc:
        raise RunError(f"The worker did not start: {exc}") from exc
    say(f"  worker ready: {worker.ops_url('/health')} /ready /metrics; logs: {WORKER_LOG.relative_to(REPO)}")

    with psycopg.connect(admin_url, autocommit=True) as admin:
        ids = {email: ensure_user(admin, email) for email, _, _ in SAMPLES}
    users: list[User] = []
    pending: dict[str, User] = {}
    types: dict[str, str] = {}
    try:
        for email, name, _ in SAMPLES:
            # PostgREST logs in as authenticator and switches to the request's role; so do the demo users.
            user = User(name, email, ids[email], psycopg.connect(localdb.url("authenticator")))
            users.append(user)
            user.skip_history()
        say("")
        for (_, _, path), user in zip(SAMPLES, users, strict=True):
            try:
                assessment_id, kind, created_at = user.submit(path)
            except Refused as refused:
                say(f"{clock()}  {user.name:<6} could not submit {path.name}:\n    "
                    + str(refused).replace("\n", "\n    "))
                if args.once:
                    return EXIT_FAILED
                continue
            pending[str(assessment_id)] = user
            user.follow_drafts(str(assessment_id))
            types[str(assessment_id)] = kind
            say(f"{clock(created_at)}  {user.name:<6} {kind:<10} {str(assessment_id)[:8]}  queued      "
                f"submitted {path.relative_to(REPO)} as {user.email}")
        return follow(users, pending, types, args.once, args.timeout, worker, started.database)
    except psycopg.OperationalError as exc:
        raise RunError(f"Lost the database connection: {exc}. Is the local database still running "
                       "('scripts/localdb status')?") from exc
    finally:
        for user in users:
            user.conn.close()


def stop(started: Started, status: int) -> int:
    """Stop what this run started, in order; returns the final exit status."""
    if started.worker is not None:
        say("Stopping the worker (it finishes jobs in flight first) ...")
        code = started.worker.terminate(STOP_TIMEOUT_SECONDS)
        started.worker.close()
        say(f"Worker stopped (exit status {code}).")
        if code not in (0, -signal.SIGTERM) and status == EXIT_OK:
            status = EXIT_FAILED
    if started.ai is not None:
        try:
            started.ai.stop()
        except subprocess.TimeoutExpired:
            started.ai.process.kill()
            started.ai.process.wait()
        if started.ai.process.stdout is not None:
            started.ai.process.stdout.close()
        say("Fake AI stopped.")
    if started.database:
        try:
            localdb.down()
            say("Local database stopped.")
        except localdb.LocalDbError as exc:
            say(f"Could not stop the local database: {exc}")
    return status


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/run-local", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="exit when the sample assessments are finished")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="with --once: seconds to wait for the samples (default 60)")
    parser.add_argument("--ai", choices=("fake", "fallback"),
                        help="fake: the devkit's fake OpenAI, streaming (the default without OPENAI_API_KEY); "
                             "fallback: no AI, the worker's fallback recommendations. Either wins over "
                             "OPENAI_API_KEY")
    args = parser.parse_args(argv)
    load_dotenv(REPO / ".env", override=False)  # real environment variables win, as in the worker

    def on_signal(signum: int, _frame: Any) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = Started()
    status = EXIT_OK
    try:
        status = run(args, started)
    except Stop as stopped:
        say(f"\n{stopped.args[0]} received: stopping.")
    except (RunError, localdb.LocalDbError) as exc:
        say(f"run-local: error: {exc}")
        status = EXIT_FAILED
    finally:
        # Finish the clean-up even if Ctrl-C is pressed again.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        status = stop(started, status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
