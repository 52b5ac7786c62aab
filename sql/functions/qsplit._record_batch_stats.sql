create or replace function qsplit._record_batch_stats(
    i_consumer      text,
    i_batch_id      bigint,
    i_queue_names   text[],
    i_counts        bigint[],
    i_actions       text[] default null)
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._record_batch_stats(5)
--
--      Add one batch's per-queue counts to qsplit.queue_stats.  Called by
--      qsplit.apply_batch after routing, inside the batch's transaction:
--      the counts commit with the events or not at all, so they are exact.
--      The consumer's row in qsplit.consumer is already locked by the
--      caller, so two drivers never race on the same counters.
--
-- Parameters:
--      i_consumer    - consumer name
--      i_batch_id    - the source batch being applied
--      i_queue_names - target queue name per entry (NULL entries are
--                      recorded under the empty name)
--      i_counts      - events per entry, same length as i_queue_names
--      i_actions     - what happened to them per entry, in result words
--                      (qsplit._result_action): inserted | created |
--                      skipped | dead_letter.  The events of a created
--                      queue were inserted, so 'created' (and NULL) is
--                      counted as 'inserted': qsplit.consumer_status
--                      counts every routed event once
--
-- Returns:
--      nothing
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      insert, update - qsplit.queue_stats
-- ----------------------------------------------------------------------
begin
    insert into qsplit.queue_stats as st
            (consumer_name, queue_name, action, n_events, n_batches, last_batch_id, last_applied_at)
        select i_consumer, e.queue_name, e.action, sum(e.n), 1, i_batch_id, now()
          from (select coalesce(u.queue_name, '') as queue_name, u.n,
                       case when u.action is null or u.action = 'created' then 'inserted'
                            else u.action end as action
                  from unnest(i_queue_names, i_counts, i_actions) as u(queue_name, n, action)) e
         where e.n > 0
         group by e.queue_name, e.action
        -- the key holds a hash of the name: a name from event data can be of
        -- any length (migration 0004)
        on conflict (consumer_name, action,
                     (pg_catalog.sha256(pg_catalog.decode(pg_catalog.replace(queue_name, '\', '\\'), 'escape'))))
        do update
            set n_events = st.n_events + excluded.n_events,
                n_batches = st.n_batches + 1,
                last_batch_id = excluded.last_batch_id,
                last_applied_at = excluded.last_applied_at;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
