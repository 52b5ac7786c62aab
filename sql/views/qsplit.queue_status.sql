-- ----------------------------------------------------------------------
-- View: qsplit.queue_status
--
--      Per consumer and target queue: how many events qsplit has routed
--      there (action 'inserted'), or handled otherwise by a routing policy
--      (another action), in how many batches, and when last.  Exact: the
--      counts commit with the events (qsplit._record_batch_stats).
--
--      select * from qsplit.queue_status where consumer_name = 'my_splitter';
-- ----------------------------------------------------------------------
create or replace view qsplit.queue_status as
select st.consumer_name,
       st.queue_name,
       st.action,
       st.n_events,
       st.n_batches,
       st.last_batch_id,
       st.last_applied_at
  from qsplit.queue_stats st;

comment on view qsplit.queue_status is
    'qsplit: events routed per consumer, target queue and action (exact, kept by apply_batch)';
