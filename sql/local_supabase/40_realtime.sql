-- Local stand-in for a Supabase project (4 of 5): Supabase Realtime's objects in the project database,
-- as Realtime's own migrations leave them, so that the migrations that broadcast and write policies on
-- realtime.messages run unchanged here and on Supabase.
--   * schema realtime owned by supabase_admin; postgres may use it but not create in it;
--   * realtime.messages partitioned by day on inserted_at, primary key (id, inserted_at), owned by
--     supabase_realtime_admin, RLS enabled; anon, authenticated and service_role may select, insert and
--     update (RLS decides), postgres has all rights but is not its owner;
--   * realtime.topic() and realtime.send() as Realtime defines them (SECURITY INVOKER; send turns every
--     error, a missing partition included, into a WARNING, so a broadcast never aborts its transaction);
--   * the daily partitions the Realtime server creates when a tenant connects: yesterday to today + 3;
--     those older than 3 days are dropped, as its janitor does. No Realtime server runs here, so every
--     `scripts/localdb up` does this; a database left running for days loses broadcasts until then.
-- What the Realtime server does with a row (replicate it to subscribers after checking RLS as each of
-- them when they join) is not reproduced: tests check the rows and the policies.
-- Guard: nothing here touches a realtime.messages that is not this stand-in (see its table comment).

do $$
begin
  if to_regclass('realtime.messages') is not null
     and coalesce(obj_description(to_regclass('realtime.messages'), 'pg_class'), '') not like 'Local stand-in%' then
    raise exception 'realtime.messages exists and is not the local stand-in: not touching it'
      using hint = 'The local stand-in is only for databases that scripts/localdb created.';
  end if;
end
$$;

create schema if not exists realtime authorization supabase_admin;
grant usage on schema realtime to anon, authenticated, service_role;
grant usage on schema realtime to postgres with grant option;
grant all on schema realtime to supabase_realtime_admin with grant option;

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
) partition by range (inserted_at);
comment on table realtime.messages is
  'Local stand-in for Supabase Realtime''s messages table (Broadcast from Database, Realtime Authorization).';
create index if not exists messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;
alter table realtime.messages owner to supabase_realtime_admin;
alter table realtime.messages enable row level security;
grant select, insert, update on table realtime.messages to anon, authenticated, service_role;
grant all on table realtime.messages to postgres, dashboard_user;

create or replace function realtime.topic()
returns text
language sql
stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text;
$$;

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
      raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;
alter function realtime.topic() owner to supabase_realtime_admin;
alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;

-- The partitions the Realtime server keeps: one a day, yesterday to today + 3, older than 3 days dropped.
do $$
declare
  day date;
  old record;
begin
  for day in select d::date from generate_series(current_date - 1, current_date + 3, interval '1 day') d
  loop
    execute format('create table if not exists realtime.%I partition of realtime.messages for values from (%L) to (%L)',
                   'messages_' || to_char(day, 'YYYY_MM_DD'), day, day + 1);
    execute format('alter table realtime.%I owner to supabase_realtime_admin', 'messages_' || to_char(day, 'YYYY_MM_DD'));
  end loop;
  for old in
    select c.relname from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'realtime.messages'::regclass
      and c.relname ~ '^messages_\d{4}_\d{2}_\d{2}$'
      and to_date(substr(c.relname, 10), 'YYYY_MM_DD') < current_date - 3
  loop
    execute format('drop table realtime.%I', old.relname);
  end loop;
end
$$;
