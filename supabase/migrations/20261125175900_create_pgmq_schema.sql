-- Purpose: create schema pgmq as postgres before 20261125180000 enables the pgmq extension, so that
-- postgres owns the schema its queues are created in, however the project got pgmq.
-- Why it is dated before the released migrations: where Supabase's supautils creates pgmq as the
-- superuser (pgmq among its privileged extensions, as in its 2024 configuration), a bare
-- `create extension if not exists pgmq` leaves schema pgmq owned by supabase_admin, and pgmq.create()
-- in 20261125180000 fails with "permission denied for schema pgmq". Released migrations are never edited,
-- so this one runs first on a fresh project. On a project that already ran 20261125180000 (Queues enabled
-- from the Dashboard first, which creates the schema as postgres) it has nothing to do; mark it applied
-- with `supabase migration repair --status applied 20261125175900` (docs/deployment.md, decision 0007).
-- Touches: schema pgmq.

create schema if not exists pgmq;
