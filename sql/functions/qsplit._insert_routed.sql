create or replace function qsplit._insert_routed(
    in i_route_column   text,
    in i_values         text[],
    in i_queues         text[],
    out queue_name      text,
    out n_events        bigint)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._insert_routed(3)
--
--      Insert the rows staged in pg_temp.qsplit_staging into their target
--      queues: a row whose routing column holds i_values[k] goes into the
--      queue i_queues[k].  Each queue gets its rows in source ev_id order;
--      rows whose value is not in i_values are left out.  The caller has
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
--
-- Returns:
--      one row per target queue that got events: (queue_name, n_events),
--      ordered by queue name
-- ----------------------------------------------------------------------
declare
    v_queue     text;
    v_values    text[];
    v_first     tid;
    v_last      tid;
begin
    for v_queue, v_values, v_first, v_last in execute format(
            'select m.q, array_agg(m.v), min(r.first_row), max(r.last_row)'
            '  from (select s.%1$I as v, min(s.ctid) as first_row, max(s.ctid) as last_row'
            '          from pg_temp.qsplit_staging s group by s.%1$I) r'
            '  join unnest($1, $2) as m(v, q) on m.v = r.v'
            ' group by m.q order by m.q',
            i_route_column)
        using i_values, i_queues
    loop
        execute format(
            'insert into %s (ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)'
            ' select s.ev_time, s.ev_type, s.ev_data, s.ev_extra1, s.ev_extra2, s.ev_extra3, s.ev_extra4'
            '   from pg_temp.qsplit_staging s'
            '  where s.ctid >= $1 and s.ctid <= $2 and s.%I = any ($3)'
            '  order by s.ev_id',
            pgq.current_event_table(v_queue)::regclass, i_route_column)
            using v_first, v_last, v_values;
        get diagnostics n_events = row_count;
        queue_name := v_queue;
        return next;
    end loop;
    return;
end;
$$ language plpgsql;
