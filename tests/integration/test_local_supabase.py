"""The local stand-in is never more permissive than Supabase: postgres is not a superuser and owns only
what it owns there; what supautils lets it do is exactly what the migrations need; realtime.messages is
partitioned by day, and a missing partition costs a broadcast, never a status change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from devkit import localdb
from devkit.postgrest import acting_as
from devkit.samples import answers, submit


@pytest.fixture
def superuser() -> psycopg.Connection[Any]:
    """supabase_admin: only to put the platform in a state a test needs, never to run the product."""
    return psycopg.connect(localdb.url(localdb.SUPERUSER), autocommit=True)


def test_postgres_has_supabase_attributes_and_no_more(admin: psycopg.Connection[Any]) -> None:
    row = admin.execute("select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls from pg_roles "
                        "where rolname = current_user").fetchone()
    assert row == (False, True, True, True, True)
    members_of = {name for (name,) in admin.execute(
        "select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid "
        "where m.member = 'postgres'::regrole")}
    assert {"anon", "authenticated", "service_role", "assessment_worker"} <= members_of
    assert not members_of & {"supabase_admin", "supabase_auth_admin", "supabase_realtime_admin"}


@pytest.mark.parametrize(("statement", "error"), [
    ("alter role postgres superuser", "permission denied to alter role|must be superuser"),  # 17 | 15
    ("set role supabase_admin", "permission denied to set role"),
    ("alter table realtime.messages disable row level security", "must be owner of table messages"),
    ("drop table realtime.messages", "must be owner of table messages"),
    ("create table auth.mine (id int)", "permission denied for schema auth"),
    ("create table realtime.mine (id int)", "permission denied for schema realtime"),
    ("alter table auth.users disable row level security", "must be owner of table users"),
    ("set session_authorization = 'supabase_admin'", "permission denied to set session authorization"),
])
def test_postgres_cannot_do_what_it_cannot_do_on_supabase(
    admin: psycopg.Connection[Any], statement: str, error: str
) -> None:
    with pytest.raises(psycopg.Error, match=error), admin.transaction():
        admin.execute(statement)


def test_policy_grants_stand_in_covers_policies_on_realtime_messages_only(admin: psycopg.Connection[Any]) -> None:
    """supautils.policy_grants: postgres may manage policies on realtime.messages, nothing more on it."""
    with admin.transaction(force_rollback=True):
        admin.execute("create policy \"probe\" on realtime.messages for select to authenticated using (false)")
        admin.execute("drop policy \"probe\" on realtime.messages")
        owner = admin.execute("select relowner::regrole::text from pg_class where oid = 'realtime.messages'::regclass")
        assert owner.fetchone() == ("supabase_realtime_admin",)  # back to Realtime after each statement


def test_postgres_keeps_its_rights_on_realtime_messages_after_policies_were_created(
    admin: psycopg.Connection[Any]
) -> None:
    """The policy_grants stand-in changes the owner for one statement; the grants come back with it."""
    with admin.transaction(force_rollback=True):
        admin.execute("create policy \"probe\" on realtime.messages for select to authenticated using (false)")
        rights = admin.execute("select has_table_privilege('postgres', 'realtime.messages', 'DELETE'), "
                               "has_table_privilege('postgres', 'realtime.messages', 'TRUNCATE')").fetchone()
    assert rights == (True, True)


def test_a_policy_on_another_table_does_not_touch_realtime_messages(admin: psycopg.Connection[Any]) -> None:
    with admin.transaction(force_rollback=True):
        admin.execute("create policy \"probe\" on public.test_assessment for select to authenticated using (false)")
        locked = admin.execute("select count(*) from pg_locks where relation = 'realtime.messages'::regclass "
                               "and mode = 'AccessExclusiveLock' and pid = pg_backend_pid()").fetchone()
    assert locked == (0,)


def test_postgres_may_skip_triggers_as_supautils_allows(admin: psycopg.Connection[Any]) -> None:
    """supautils.privileged_role_allowed_configs includes session_replication_role."""
    with admin.transaction(force_rollback=True):
        admin.execute("set local session_replication_role = replica")


def test_realtime_messages_is_partitioned_by_day_like_realtimes(admin: psycopg.Connection[Any]) -> None:
    assert admin.execute("select partstrat from pg_partitioned_table "
                         "where partrelid = 'realtime.messages'::regclass").fetchone() == ("r",)
    key = admin.execute("select array_agg(a.attname order by a.attname) from pg_index i join pg_attribute a "
                        "on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                        "where i.indrelid = 'realtime.messages'::regclass and i.indisprimary").fetchone()
    assert key == (["id", "inserted_at"],)
    today = dt.date.today()
    wanted = {f"messages_{day:%Y_%m_%d}" for day in (today + dt.timedelta(days=n) for n in range(-1, 4))}
    partitions = dict(admin.execute(
        "select c.relname, c.relowner::regrole::text from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = 'realtime.messages'::regclass").fetchall())
    assert wanted <= set(partitions)
    assert {partitions[name] for name in wanted} == {"supabase_realtime_admin"}


def test_a_missing_partition_loses_the_broadcast_but_not_the_status_change(
    admin: psycopg.Connection[Any], superuser: psycopg.Connection[Any], user_id: uuid.UUID
) -> None:
    """As on Supabase when Realtime has not created the day's partition: realtime.send only warns."""
    [assessment_id] = submit(admin, user_id, [{"assessment_type": "career", "answers": answers(901)}])
    today = f"messages_{dt.date.today():%Y_%m_%d}"
    warnings: list[str] = []
    superuser.add_notice_handler(lambda diag: warnings.append(diag.message_primary or ""))
    with superuser.transaction(force_rollback=True):
        superuser.execute(f"alter table realtime.messages detach partition realtime.{today}")  # fixed name
        superuser.execute("set local role assessment_worker")
        superuser.execute("update public.test_assessment set status = 'processing', attempts = 1, started_at = now() "
                          "where id = %s", (assessment_id,))
        superuser.execute("reset role")
        status = superuser.execute("select status::text from public.test_assessment where id = %s", (assessment_id,))
        assert status.fetchone() == ("processing",)
        sent = superuser.execute("select count(*) from realtime.messages where topic = %s",
                                 (f"assessment:{assessment_id}",))
        assert sent.fetchone() == (0,)
    assert any("no partition of relation" in warning for warning in warnings), warnings


def test_a_user_cannot_broadcast_through_realtime_send(admin: psycopg.Connection[Any], user_id: uuid.UUID) -> None:
    """realtime.send is callable by anyone (as on Supabase), but RLS has no insert policy: nothing is sent."""
    topic = f"user:{user_id}"
    with acting_as(admin, user_id) as cur:
        cur.execute("select realtime.send('{\"type\": \"recommendation_completed\"}', 'recommendation_completed', "
                    "%s, true)", (topic,))
        cur.execute("reset role")
        cur.execute("select count(*) as n from realtime.messages where topic = %s", (topic,))
        row = cur.fetchone()
    assert row == {"n": 0}
