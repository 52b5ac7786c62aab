-- ----------------------------------------------------------------------
-- View: qsplit.consumer_status
--
--      One row per consumer known on this target: its position (the last
--      source tick and batch applied), when that batch was applied and how
--      long ago, the events routed in total and per target queue, and
--      the dead letters of the consumer waiting in qsplit.dead_letter
--      (for qsplit.replay_dead_letters or discard_dead_letters).
--      The source-side facts (lag, pending events) live on the source:
--      pgq.get_consumer_info(); `qsplit-driver --status` shows both.
--
--      A writer sees only the consumers that belong to it (or to a role
--      it is a member of, see qsplit.set_consumer_owner); superusers and
--      qsplit_admin members see all; owner_name says whose each is.  The
--      view is a security barrier: no function of the reader's making in
--      a WHERE clause sees the rows it hides.
--
--      select * from qsplit.consumer_status;
--      Every function is pg_catalog-qualified: a view binds its functions
--      when it is created, and a look-alike in public (an aggregate
--      jsonb_object_agg(text, bigint) matches better than pg_catalog's
--      ("any", "any")) would run as whoever reads the view.
-- ----------------------------------------------------------------------
create or replace view qsplit.consumer_status with (security_barrier) as
select c.consumer_name,
       c.last_tick_id,
       c.last_tick_time,
       c.last_batch_id,
       c.last_applied_at,
       pg_catalog.now() - c.last_applied_at as since_last_batch,
       coalesce(s.events_routed, 0)::bigint as events_routed,
       coalesce(s.events_by_queue, '{}'::jsonb) as events_by_queue,
       coalesce(s.events_by_action, '{}'::jsonb) as events_by_action,
       (select o.rolname from pg_catalog.pg_roles o where o.oid operator(pg_catalog.=) c.owner_role) as owner_name,
       (select pg_catalog.count(*) from qsplit.dead_letter d
         where d.consumer_name operator(pg_catalog.=) c.consumer_name) as dead_letters_waiting
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
       ) s on true
 where pg_catalog.pg_has_role(session_user, 'qsplit_admin', 'MEMBER')
    or exists (select 1 from pg_catalog.pg_roles r
                where r.oid operator(pg_catalog.=) c.owner_role
                  and pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER'));

comment on view qsplit.consumer_status is
    'qsplit: per consumer, target position, last batch time and events routed (exact, kept by apply_batch)';
