-- Purpose: no function in schema private is executable by PUBLIC. touch_assessment kept the EXECUTE that
-- PostgreSQL gives PUBLIC on every new function; nobody needs it (a trigger fires without it), and
-- supabase/tests/database/080-catalog-invariants.test.sql now checks every function for it.
-- Touches: the grants of private.touch_assessment().

revoke execute on function private.touch_assessment() from public;
