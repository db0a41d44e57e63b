-- Purpose: no user statement can make the worker wait long. The commit skips an assessment another
-- transaction holds (SKIP LOCKED); the worker's other writes to an assessment (a failed attempt's
-- last_error, a dead letter's failed status) wait at most 2 s for its lock, then fail as a transient
-- error (55P03) and the job returns when its lease ends, instead of waiting out another user's
-- statement (up to authenticated's statement timeout). Applies to every session the worker opens.
-- Touches: role assessment_worker (lock_timeout).

alter role assessment_worker set lock_timeout = '2s';
