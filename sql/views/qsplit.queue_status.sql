-- ----------------------------------------------------------------------
-- View: qsplit.queue_status
--
--      Per consumer and target queue: how many events qsplit has routed
--      there (action 'inserted'), or handled otherwise by a routing policy
--      (another action), in how many batches, and when last.  Exact: the
--      counts commit with the events (qsplit._record_batch_stats).
--
--      select * from qsplit.queue_status where consumer_name = 'my_splitter';
--      Rows of a consumer are shown to its own role only (superusers and
--      qsplit_admin members see all), as in qsplit.consumer_status.
-- ----------------------------------------------------------------------
create or replace view qsplit.queue_status with (security_barrier) as
select st.consumer_name,
       st.queue_name,
       st.action,
       st.n_events,
       st.n_batches,
       st.last_batch_id,
       st.last_applied_at
  from qsplit.queue_stats st
 where pg_catalog.pg_has_role(session_user, 'qsplit_admin', 'MEMBER')
    or exists (select 1 from qsplit.consumer c join pg_catalog.pg_roles r on r.oid operator(pg_catalog.=) c.owner_role
                where c.consumer_name operator(pg_catalog.=) st.consumer_name
                  and pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER'));

comment on view qsplit.queue_status is
    'qsplit: events routed per consumer, target queue and action (exact, kept by apply_batch)';
