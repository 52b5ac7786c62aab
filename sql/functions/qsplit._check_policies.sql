create or replace function qsplit._check_policies(
    i_consumer      text,
    i_batch_id      bigint,
    i_on_unknown    text,
    i_on_null       text,
    i_default_queue text)
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._check_policies(5)
--
--      Check the routing policies qsplit.apply_batch was given (the ini
--      keys on_unknown_queue, on_null_queue, default_queue).
--
-- Parameters:
--      i_consumer, i_batch_id - for the error message
--      i_on_unknown    - error | skip | create | default | dead_letter
--      i_on_null       - error | skip | default | dead_letter
--      i_default_queue - needed by 'default'
--
-- Errors:
--      QS008 - an unknown policy, or 'default' without a default queue
--
-- Calls:
--      None
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
    if 'default' in (i_on_unknown, i_on_null) and coalesce(i_default_queue, '') = '' then
        raise exception 'qsplit: consumer "%" batch %: policy "default" needs a default queue', i_consumer, i_batch_id
            using errcode = 'QS008',
                  hint = 'Set default_queue to the name of an existing target queue.';
    end if;
end;
$$ language plpgsql immutable;
