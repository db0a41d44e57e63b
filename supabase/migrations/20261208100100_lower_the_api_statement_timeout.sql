-- Purpose: bound what one API request can cost. A signed-in user may filter their own rows with any
-- PostgREST operator, and a backtracking `match` (~) over free text (answers up to 64 KiB of JSON, notes,
-- summaries) runs until the statement timeout: 8 s of one backend's CPU per request at Supabase's default
-- for `authenticated`. No request of this product needs more than a few milliseconds (docs/performance.md),
-- so 3 s (the default Supabase gives `anon`) bounds the worst case to 3 s per request. PostgREST (11.1 and
-- later) applies a role's settings to every request it makes as that role, once it reloads its config.
-- docs/deployment.md ("What one request can cost") states the measured costs and what else limits them.
-- This is a setting of the project's own database: an app sharing the project that needs longer queries
-- as `authenticated` may raise it again.
-- Touches: role authenticated (statement_timeout).

alter role authenticated set statement_timeout = '3s';
-- PostgREST reads role settings when it loads its configuration: tell it to now.
notify pgrst, 'reload config';
