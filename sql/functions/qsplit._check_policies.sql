create or replace function qsplit._check_policies(
    i_consumer      text,
    i_batch_id      bigint,
    i_on_unknown    text,
    i_on_null       text,
    i_default_queue text,
    i_create_limit  integer default 20,
    i_create_pattern text default null,
    i_create_fallback text default 'dead_letter')
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._check_policies(8)
--
--      Check the routing policies qsplit.apply_batch was given (the ini
--      keys on_unknown_queue, on_null_queue, default_queue, create_limit,
--      create_pattern, create_fallback).
--
-- Parameters:
--      i_consumer, i_batch_id - for the error message
--      i_on_unknown    - error | skip | create | default | dead_letter
--      i_on_null       - error | skip | default | dead_letter
--      i_default_queue - needed by 'default'
--      i_create_limit  - queues 'create' may make per batch, >= 0
--      i_create_pattern - NULL, or a pattern without back-references
--      i_create_fallback - error | skip | default | dead_letter
--
-- Errors:
--      QS008 - an unknown policy, 'default' without a default queue, a
--              bad create_limit or create_pattern
--
-- Calls:
--      qsplit._route_pattern_problem(1)
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
begin
    if i_on_unknown is null or i_on_unknown not in ('error', 'skip', 'create', 'default', 'dead_letter') then
        raise exception 'qsplit: consumer "%" batch %: unknown on_unknown_queue policy %',
                i_consumer, i_batch_id, coalesce(quote_literal(i_on_unknown), 'NULL')
            using errcode = 'QS008',
                  hint = 'Set on_unknown_queue to one of error, skip, create, default, dead_letter.';
    end if;
    if i_on_null is null or i_on_null not in ('error', 'skip', 'default', 'dead_letter') then
        raise exception 'qsplit: consumer "%" batch %: unknown on_null_queue policy %',
                i_consumer, i_batch_id, coalesce(quote_literal(i_on_null), 'NULL')
            using errcode = 'QS008',
                  hint = 'Set on_null_queue to one of error, skip, default, dead_letter.';
    end if;
    if i_create_fallback is null or i_create_fallback not in ('error', 'skip', 'default', 'dead_letter') then
        raise exception 'qsplit: consumer "%" batch %: unknown create_fallback policy %',
                i_consumer, i_batch_id, coalesce(quote_literal(i_create_fallback), 'NULL')
            using errcode = 'QS008',
                  hint = 'Set create_fallback to one of error, skip, default, dead_letter.';
    end if;
    if i_create_limit is null or i_create_limit < 0 then
        raise exception 'qsplit: consumer "%" batch %: create_limit must be 0 or more, not %',
                i_consumer, i_batch_id, coalesce(i_create_limit::text, 'NULL')
            using errcode = 'QS008',
                  hint = 'Set create_limit to the most queues one batch may create (each takes about 40 locks).';
    end if;
    if i_create_pattern is not null and qsplit._route_pattern_problem(i_create_pattern) is not null then
        raise exception 'qsplit: consumer "%" batch %: create_pattern % is refused: %',
                i_consumer, i_batch_id, quote_literal(i_create_pattern), qsplit._route_pattern_problem(i_create_pattern)
            using errcode = 'QS008',
                  hint = 'create_pattern is a POSIX regular expression without back-references, matched against the whole queue name.';
    end if;
    if 'default' in (i_on_unknown, i_on_null, case when i_on_unknown = 'create' then i_create_fallback end)
       and coalesce(i_default_queue, '') = '' then
        raise exception 'qsplit: consumer "%" batch %: policy "default" needs a default queue', i_consumer, i_batch_id
            using errcode = 'QS008',
                  hint = 'Set default_queue to the name of an existing target queue.';
    end if;
end;
$$ language plpgsql immutable
   set search_path = pg_catalog, pg_temp;
