create or replace function qsplit._insert_routed(
    in i_route_column   text,
    in i_values         text[],
    in i_queues         text[],
    in i_null_queue     text default null,
    out queue_name      text,
    out n_events        bigint)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._insert_routed(4)
--
--      Insert the rows staged in pg_temp.qsplit_staging into their target
--      queues: a row whose routing column holds i_values[k] goes into the
--      queue i_queues[k], a row whose value is NULL into i_null_queue.
--      Each queue gets its rows in source ev_id order, in one INSERT (so a
--      queue fed by several values, NULL included, is in order too); rows
--      whose value is not mapped are left out.  The caller has
--      checked the queues (they exist and take inserts); this function
--      only moves rows.
--
--      One pass over the staging table finds, per routing value, the
--      first and last row (by ctid); each queue's INSERT then reads only
--      that ctid range (a TID range scan), not the whole table.  The
--      driver COPYs a batch grouped by routing value, so the ranges do not
--      overlap and the inserts together read the staged batch once.  In
--      any other physical order the ranges overlap and the result is the
--      same, only slower: the filter on the routing value, not the range,
--      decides which rows a queue gets.
--
-- Parameters:
--      i_route_column  - staging column holding the routing value, from
--                        qsplit._route_column() (quoted with %I here)
--      i_values        - routing values
--      i_queues        - target queue of each value (same length)
--      i_null_queue    - target queue of rows whose value is NULL (NULL: none)
--
-- Returns:
--      one row per target queue that got events: (queue_name, n_events),
--      ordered by queue name
--
-- Calls:
--      pgq.current_event_table(1)
--
-- Tables directly manipulated:
--      insert - the target queues' event tables (pgq.event_N_M)
-- ----------------------------------------------------------------------
declare
    v_queue     text;
    v_values    text[];
    v_with_null boolean;
    v_first     tid;
    v_last      tid;
begin
    -- equality joins only (hashable); the NULL group joins on its own
    for v_queue, v_values, v_with_null, v_first, v_last in execute format(
            'with r as ('
            '    select s.%1$I as v, min(s.ctid) as first_row, max(s.ctid) as last_row'
            '      from pg_temp.qsplit_staging s group by s.%1$I),'
            ' m as ('
            '    select u.q, u.v, r.first_row, r.last_row'
            '      from r join unnest($1, $2) as u(v, q) on u.v = r.v'
            '    union all'
            '    select $3, null, r.first_row, r.last_row'
            '      from r where r.v is null and $3 is not null)'
            'select m.q, coalesce(array_agg(m.v) filter (where m.v is not null), ''{}''),'
            '       bool_or(m.v is null), min(m.first_row), max(m.last_row)'
            '  from m group by m.q order by m.q',
            i_route_column)
        using i_values, i_queues, i_null_queue
    loop
        execute format(
            'insert into %s (ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)'
            ' select s.ev_time, s.ev_type, s.ev_data, s.ev_extra1, s.ev_extra2, s.ev_extra3, s.ev_extra4'
            '   from pg_temp.qsplit_staging s'
            '  where s.ctid >= $1 and s.ctid <= $2 and (s.%2$I = any ($3) or ($4 and s.%2$I is null))'
            '  order by s.ev_id',
            pgq.current_event_table(v_queue)::regclass, i_route_column)
            using v_first, v_last, v_values, v_with_null;
        get diagnostics n_events = row_count;
        queue_name := v_queue;
        return next;
    end loop;
    return;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
