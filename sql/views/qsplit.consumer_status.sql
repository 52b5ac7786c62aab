-- ----------------------------------------------------------------------
-- View: qsplit.consumer_status
--
--      One row per consumer known on this target: its position (the last
--      source tick and batch applied), when that batch was applied and how
--      long ago, and the events routed in total and per target queue.
--      The source-side facts (lag, pending events) live on the source:
--      pgq.get_consumer_info(); `qsplit-driver --status` shows both.
--
--      select * from qsplit.consumer_status;
--      Every function is pg_catalog-qualified: a view binds its functions
--      when it is created, and a look-alike in public (an aggregate
--      jsonb_object_agg(text, bigint) matches better than pg_catalog's
--      ("any", "any")) would run as whoever reads the view.
-- ----------------------------------------------------------------------
create or replace view qsplit.consumer_status as
select c.consumer_name,
       c.last_tick_id,
       c.last_tick_time,
       c.last_batch_id,
       c.last_applied_at,
       pg_catalog.now() - c.last_applied_at as since_last_batch,
       coalesce(s.events_routed, 0)::bigint as events_routed,
       coalesce(s.events_by_queue, '{}'::jsonb) as events_by_queue,
       coalesce(s.events_by_action, '{}'::jsonb) as events_by_action
  from qsplit.consumer c
  left join lateral (
        select pg_catalog.sum(st.n_events) filter (where st.action = 'inserted') as events_routed,
               pg_catalog.jsonb_object_agg(st.queue_name, st.n_events)
                   filter (where st.action = 'inserted') as events_by_queue,
               (select pg_catalog.jsonb_object_agg(a.action, a.n)
                  from (select st2.action, pg_catalog.sum(st2.n_events) as n
                          from qsplit.queue_stats st2
                         where st2.consumer_name = c.consumer_name
                         group by st2.action) a) as events_by_action
          from qsplit.queue_stats st
         where st.consumer_name = c.consumer_name
       ) s on true;

comment on view qsplit.consumer_status is
    'qsplit: per consumer, target position, last batch time and events routed (exact, kept by apply_batch)';
