create or replace function qsplit._insert_routed(
    in i_route_column   text,
    in i_values         text[],
    in i_queues         text[],
    in i_first_rows     tid[],
    in i_last_rows      tid[],
    out queue_name      text,
    out n_events        bigint)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._insert_routed(5)
--
--      Insert the rows staged in pg_temp.qsplit_staging into their target
--      queues: a row whose routing column holds i_values[k] goes into the
--      queue i_queues[k]; one element of i_values may be NULL, for the rows
--      whose value is NULL.  Each queue gets its rows in source ev_id order,
--      in one INSERT (so a queue fed by several values, NULL included, is
--      in order too); rows whose value is not mapped are left out.  The
--      caller has checked the queues (they exist and take inserts); this
--      function only moves rows.
--
--      i_first_rows[k] .. i_last_rows[k] is the stretch of the staging
--      table (by ctid) that holds value k's rows, from the pass that
--      planned the batch (qsplit._route_plan): each queue's INSERT reads
--      only the stretch of its values (a TID range scan), not the whole
--      table.  The driver COPYs a batch grouped by routing value, so the
--      stretches do not overlap and the inserts together read the staged
--      batch once.  In any other physical order the stretches overlap and
--      the result is the same, only slower: the filter on the routing
--      value, not the range, decides which rows a queue gets (a stretch
--      too narrow would leave rows out: it must cover the value's rows).
--
-- Parameters:
--      i_route_column  - staging column holding the routing value, from
--                        qsplit._route_column() (quoted with %I here)
--      i_values        - routing values (at most one NULL)
--      i_queues        - target queue of each value (same length)
--      i_first_rows    - ctid of each value's first staged row
--      i_last_rows     - ctid of each value's last staged row
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
    for v_queue, v_values, v_with_null, v_first, v_last in
        select u.q, coalesce(pg_catalog.array_agg(u.v) filter (where u.v is not null), '{}'),
               pg_catalog.bool_or(u.v is null), pg_catalog.min(u.f), pg_catalog.max(u.l)
          from unnest(i_values, i_queues, i_first_rows, i_last_rows) as u(v, q, f, l)
         where u.q is not null
         group by u.q
         order by u.q
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
