-- Purpose: an oversized body is rejected before any expensive work. The validation trigger (a10) measured
-- answers by rendering them as text and walked them; a 10 MB body cost about 370 ms of database time per
-- attempt, and a rejected insert spends no quota, so it could be repeated at will. This trigger runs
-- first (triggers fire in name order) and only reads the stored size of each value, which costs nothing
-- whatever the size; the exact limits stay in a10.
-- Touches: private.reject_oversized_assessment(), trigger a05_reject_oversized_assessment.

create function private.reject_oversized_assessment()
returns trigger
language plpgsql
security definer  -- only so that callers need no rights on schema private (for validation_error)
set search_path = ''
as $$
begin
  -- Well above what a10 accepts (64 KiB of answers; a context of ten 200-character goals and 1000
  -- characters of notes): anything larger cannot pass validation, so it is refused unread.
  if pg_catalog.pg_column_size(new.answers) > 262144 then
    perform private.validation_error('answers', 'are larger than 65536 bytes in all',
      format('Got about %s bytes.', pg_catalog.pg_column_size(new.answers)), 'Shorten the longest answers.');
  end if;
  if pg_catalog.pg_column_size(new.context) > 65536 then
    perform private.validation_error('context', 'is larger than 65536 bytes',
      format('Got about %s bytes.', pg_catalog.pg_column_size(new.context)), 'Shorten the goals and notes.');
  end if;
  if pg_catalog.octet_length(new.assessment_type) > 1024 then
    perform private.validation_error('assessment_type', 'must be a slug of 2-64 characters',
      format('Got %s bytes.', pg_catalog.octet_length(new.assessment_type)),
      'Use lowercase letters, digits and _, starting with a letter, such as "career".');
  end if;
  return new;
end;
$$;
comment on function private.reject_oversized_assessment() is
  'Before insert or update of assessment content, before validation: refuses bodies far over the limits without reading them.';
revoke execute on function private.reject_oversized_assessment() from public, anon, authenticated;

create trigger a05_reject_oversized_assessment
  before insert or update of assessment_type, answers, context on public.test_assessment
  for each row execute function private.reject_oversized_assessment();
