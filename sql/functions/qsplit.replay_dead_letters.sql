create or replace function qsplit.replay_dead_letters(
    i_consumer  text,
    i_queue     text default null)
returns bigint as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.replay_dead_letters(2)
--
--      Re-route a consumer's dead letters once the cause is fixed (the
--      queue created, inserts enabled again, a route added): each dead
--      letter's routing value is mapped again by today's route rules, and
--      the events whose queue now exists and takes inserts move into it,
--      in source ev_id order, and leave qsplit.dead_letter in the same
--      transaction.  The others stay.  Dead letters with a NULL routing
--      value name no queue and stay.  Two replays at once move each event
--      once (the second waits for the first's row locks).
--
-- Parameters:
--      i_consumer  - consumer name
--      i_queue     - only the dead letters that wanted this queue
--                    (qsplit.dead_letter.queue_name); default: all
--
-- Returns:
--      how many events moved
--
-- Calls:
--      qsplit._route_target(2), pgq.current_event_table(1)
--
-- Tables directly manipulated:
--      delete - qsplit.dead_letter
--      insert - the target queues' event tables (pgq.event_N_M)
-- ----------------------------------------------------------------------
declare
    v_plan  record;
    v_table regclass;
    v_n     bigint;
    v_total bigint := 0;
begin
    for v_plan in
        select t.wanted, array_agg(t.route_value) as route_values
          from (select d.route_value, qsplit._route_target(i_consumer, d.route_value) as wanted
                  from (select distinct dl.route_value
                          from qsplit.dead_letter dl
                         where dl.consumer_name = i_consumer
                           and dl.route_value is not null
                           and (i_queue is null or dl.queue_name = i_queue)) d) t
          join pgq.queue q on q.queue_name = t.wanted
         where not (q.queue_disable_insert and current_setting('session_replication_role') <> 'replica')
         group by t.wanted
         order by t.wanted
    loop
        v_table := pgq.current_event_table(v_plan.wanted)::regclass;
        execute format(
            'with moved as ('
            '    delete from qsplit.dead_letter d'
            '     where d.consumer_name = $1 and d.route_value = any ($2) and ($3::text is null or d.queue_name = $3)'
            '    returning d.*'
            ')'
            'insert into %s (ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)'
            ' select m.ev_time, m.ev_type, m.ev_data, m.ev_extra1, m.ev_extra2, m.ev_extra3, m.ev_extra4'
            '   from moved m order by m.ev_id, m.dl_id',
            v_table)
            using i_consumer, v_plan.route_values, i_queue;
        get diagnostics v_n = row_count;
        v_total := v_total + v_n;
    end loop;
    return v_total;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
