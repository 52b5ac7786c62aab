create or replace function qsplit._insert_dead_letters(
    i_consumer      text,
    i_batch_id      bigint,
    i_route_column  text,
    i_values        text[],
    i_queues        text[],
    i_reasons       text[])
returns bigint as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._insert_dead_letters(6)
--
--      Set the staged events of some routing values aside, whole, in
--      qsplit.dead_letter (the dead_letter policy), in source ev_id
--      order, with the consumer, the batch and why.  The caller has made
--      the plan (qsplit._route_plan); this function only moves rows.
--
-- Parameters:
--      i_consumer, i_batch_id - where the events came from
--      i_route_column  - staging column holding the routing value, from
--                        qsplit._route_column() (quoted with %I here)
--      i_values        - routing values to set aside (NULL: the events
--                        whose value is NULL)
--      i_queues        - the queue each value wanted (same length)
--      i_reasons       - why each value is set aside (same length)
--
-- Returns:
--      how many events were set aside
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      insert - qsplit.dead_letter
-- ----------------------------------------------------------------------
declare
    v_n bigint;
begin
    -- equality joins only (hashable), NULLs in their own branch: a batch
    -- with one routing value per event must not cost a nested loop
    execute format(
        'with p as (select * from unnest($4, $5, $6) u(route_value, queue_name, reason))'
        'insert into qsplit.dead_letter (consumer_name, batch_id, queue_field, route_value, queue_name, reason,'
        '       ev_id, ev_time, ev_txid, ev_retry, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)'
        ' select $1, $2, $3, d.route_value, d.queue_name, d.reason,'
        '        d.ev_id, d.ev_time, d.ev_txid, d.ev_retry, d.ev_type, d.ev_data,'
        '        d.ev_extra1, d.ev_extra2, d.ev_extra3, d.ev_extra4'
        '   from (select p.route_value, p.queue_name, p.reason, s.*'
        '           from pg_temp.qsplit_staging s join p on p.route_value = s.%1$I'
        '         union all'
        '         select p.route_value, p.queue_name, p.reason, s.*'
        '           from pg_temp.qsplit_staging s join p on p.route_value is null'
        '          where s.%1$I is null) d'
        '  order by d.ev_id',
        i_route_column)
        using i_consumer, i_batch_id, substr(i_route_column, 4), i_values, i_queues, i_reasons;
    get diagnostics v_n = row_count;
    return v_n;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
