-- Local stand-in for Supabase Realtime's database objects: what "Broadcast from Database" and
-- "Realtime Authorization" use, so the migrations that send broadcasts and write policies on
-- realtime.messages run unchanged here and on Supabase.
-- Applied by scripts/localdb (psql) to databases that are NOT Supabase; never part of a migration.
-- Idempotent, and it never touches a real Realtime schema: the objects are (re)created only when
-- realtime.messages does not exist yet or is this stand-in (recognised by its table comment).
-- Touches: schema realtime; realtime.messages, realtime.topic(), realtime.send(); grants to anon,
-- authenticated, service_role.
--
-- Signatures and behaviour follow Supabase Realtime's own definitions:
--   realtime.topic() returns text                      -- the channel topic being authorised
--   realtime.send(payload jsonb, event text, topic text, private boolean default true) returns void
-- What the Realtime server does with a row of realtime.messages (read it by logical replication and
-- push it to the channel's subscribers, after checking RLS as each subscriber when it joins) is not
-- reproduced: tests check the rows and the policies, which are the database's part of the contract.

select (
  to_regclass('realtime.messages') is null
  or coalesce(obj_description(to_regclass('realtime.messages'), 'pg_class'), '') like 'Local stand-in%'
) as realtime_standin_applies
\gset

\if :realtime_standin_applies

create schema if not exists realtime;
grant usage on schema realtime to postgres, anon, authenticated, service_role;

-- Supabase partitions realtime.messages by range of inserted_at (one partition a day, created and
-- dropped by the Realtime server, primary key (id, inserted_at)). A plain table is enough locally:
-- no Realtime server runs here to manage partitions, and nothing in our code depends on them.
create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  id uuid not null default gen_random_uuid(),
  constraint messages_pkey primary key (id, inserted_at)
);
comment on table realtime.messages is
  'Local stand-in for Supabase Realtime''s messages table (Broadcast from Database, Realtime Authorization). Not partitioned here.';
create index if not exists messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;

-- As on Supabase: the API roles have table rights, and RLS policies (written by the application's
-- migrations) are the only guard. Without a policy nobody but the owner and service_role reads a row.
alter table realtime.messages enable row level security;
grant select, insert, update on table realtime.messages to anon, authenticated, service_role;
grant all on table realtime.messages to postgres;

-- The topic a client is joining. Realtime sets it (with the caller's role and JWT claims) in the
-- transaction in which it checks the caller's policies on realtime.messages.
create or replace function realtime.topic()
returns text
language sql
stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text;
$$;

-- Broadcast from Database: a message is a row; the Realtime server replicates it to the topic's
-- subscribers. Like Supabase's: adds an `id` to the payload when it has none, sets realtime.topic for
-- the rest of the transaction, and turns any failure into a warning so that the caller's transaction
-- is never aborted by a broadcast.
create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
declare
  generated_id uuid;
  final_payload jsonb;
begin
  begin
    generated_id := gen_random_uuid();
    if payload ? 'id' then
      final_payload := payload;
    else
      final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
    end if;

    execute format('set local realtime.topic to %L', topic);

    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;

grant execute on function realtime.topic() to postgres, anon, authenticated, service_role;
revoke execute on function realtime.send(jsonb, text, text, boolean) from public, anon, authenticated;
grant execute on function realtime.send(jsonb, text, text, boolean) to postgres, service_role;

\endif
