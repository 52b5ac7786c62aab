create or replace function qsplit._check_queue_field(
    i_consumer      text,
    i_batch_id      bigint,
    i_queue_field   text)
returns text as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._check_queue_field(3)
--
--      Check the queue_field qsplit.apply_batch was given (the ini key of
--      the same name) and name the staging column it means.
--
-- Parameters:
--      i_consumer, i_batch_id - for the error message
--      i_queue_field   - extra1..extra4 or type (see qsplit._route_column)
--
-- Returns:
--      the staging column holding the routing value, e.g. ev_extra1
--
-- Errors:
--      QS005 - unknown queue_field
--
-- Calls:
--      qsplit._route_column(1)
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
declare
    v_col text := qsplit._route_column(i_queue_field);
begin
    if v_col is null then
        raise exception 'qsplit: consumer "%" batch %: unknown queue_field %',
                i_consumer, i_batch_id, coalesce(quote_literal(i_queue_field), 'NULL')
            using errcode = 'QS005',
                  detail = 'queue_field names the event field that holds the target queue name.',
                  hint = 'Set queue_field to one of extra1, extra2, extra3, extra4, type.';
    end if;
    return v_col;
end;
$$ language plpgsql immutable
   set search_path = pg_catalog, pg_temp;
