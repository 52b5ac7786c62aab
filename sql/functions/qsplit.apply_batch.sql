create or replace function qsplit.apply_batch(
    in i_consumer       text,
    in i_batch_id       bigint,
    in i_prev_tick_id   bigint,
    in i_cur_tick_id    bigint,
    in i_queue_field    text default 'extra1',
    in i_on_unknown     text default 'error',
    in i_on_null        text default 'error',
    in i_default_queue  text default null,
    in i_prev_tick_time timestamptz default null,
    in i_cur_tick_time  timestamptz default null,
    in i_create_limit   integer default 20,
    in i_create_pattern text default null,
    in i_create_fallback text default 'dead_letter',
    out queue_name      text,
    out n_events        bigint,
    out action          text)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.apply_batch(13)
--
--      Apply one source batch, staged by COPY in pg_temp.qsplit_staging,
--      to the target queues: each event goes into the queue its
--      queue_field names (mapped by the consumer's route rules, see
--      qsplit.add_route), in source ev_id order, and the consumer's
--      position moves to the batch's cur tick in the same transaction.  The
--      caller commits; a batch is applied exactly once because the position
--      and the events commit together.
--
--      The steps, each one function:
--        1. check the settings and the staging table
--           (qsplit._check_queue_field, _check_policies, _check_staging);
--        2. lock the consumer's position row and move it to the batch's
--           cur tick (qsplit._claim_position): a second driver on the
--           same consumer waits there, then finds the batch already
--           applied; a batch that does not follow the position is QS001,
--           one of another source queue (same tick id, other tick time)
--           QS007;
--        3. decide where each DISTINCT routing value goes, for the whole
--           batch (qsplit._route_plan), with the policies for a missing or
--           insert-disabled queue and for a NULL value: error | skip |
--           create | default | dead_letter; any 'error' applies nothing
--           (qsplit._raise_route_error);
--        4. carry the plan out: create queues (pgq.create_queue), set
--           events aside (qsplit._insert_dead_letters), insert the rest,
--           one INSERT ... SELECT per target queue (qsplit._insert_routed);
--        5. count what was done, in result words (qsplit._result_action),
--           for the status views (qsplit._record_batch_stats).
--      Events keep ev_time, ev_type, ev_data and ev_extra1..4; the target
--      assigns ev_id and ev_txid; ev_retry is dropped.
--
--      SECURITY DEFINER: the driver's role needs only EXECUTE (role
--      qsplit_writer).  The staging table it owns is checked first
--      (qsplit._check_staging).
--
-- Parameters:
--      i_consumer      - consumer name (the source consumer, pgq_consumer_id)
--      i_batch_id      - source batch id (for messages and the position row)
--      i_prev_tick_id  - the batch's prev_tick_id from pgq.next_batch*
--      i_cur_tick_id   - the batch's cur_tick_id from pgq.next_batch*
--      i_queue_field   - event field naming the target queue: extra1 (default),
--                        extra2, extra3, extra4 or type
--      i_on_unknown    - missing or insert-disabled target queue:
--                        error (default) | skip | create | default | dead_letter
--      i_on_null       - NULL routing value: error (default) | skip | default | dead_letter
--      i_default_queue - target queue of the 'default' policy
--      i_prev_tick_time, i_cur_tick_time - the batch's tick times from
--                        pgq.next_batch* (NULL: check tick ids only)
--      i_create_limit  - 'create' makes at most this many queues per batch
--                        (default 20; each holds ~40 locks until commit)
--      i_create_pattern - 'create' makes only queues a route rule names or
--                        whose name matches this pattern (NULL: any name)
--      i_create_fallback - what happens to the events of the names 'create'
--                        refuses (too long, not allowed, beyond the limit):
--                        error | skip | default | dead_letter (default)
--
-- Returns:
--      one row per target queue and action: (queue_name, n_events, action),
--      action one of 'inserted', 'created' (queue created, then inserted),
--      'skipped', 'dead_letter' (queue_name: the queue the events wanted,
--      NULL for NULL routing values); a batch that was already applied:
--      one row (NULL, staged rows, 'already_applied') and nothing written.
--
-- Errors:
--      QS001 - lost position; QS002 - unknown target queue;
--      QS003 - NULL routing value; QS004 - staging table missing;
--      QS005 - unknown queue_field; QS006 - target queue refuses inserts;
--      QS007 - the position was written by another source queue;
--      QS008 - bad policy or default queue; QS009 - staging table not genuine;
--      QS011 - the consumer belongs to another role; QS013 - a NULL tick
--      time for a position that has one.
--      Each error names the consumer and the batch; its HINT says what to do.
--
-- Calls:
--      qsplit._check_queue_field(3), qsplit._check_policies(8),
--      qsplit._check_staging(2), qsplit._claim_position(6),
--      qsplit._route_plan(8), qsplit._raise_route_error(7),
--      pgq.create_queue(1), qsplit._insert_dead_letters(6),
--      qsplit._insert_routed(5), qsplit._result_action(1),
--      qsplit._record_batch_stats(5)
--
-- Tables directly manipulated:
--      None (through the functions it calls: qsplit.consumer,
--      qsplit.dead_letter, qsplit.queue_stats, the target queues' event
--      tables, and pgq.queue when a queue is created)
-- ----------------------------------------------------------------------
declare
    v_col       text;
    v_values    text[];
    v_queues    text[];
    v_counts    bigint[];
    v_actions   text[];
    v_reasons   text[];
    v_firsts    tid[];
    v_lasts     tid[];
    v_queue     text;
begin
    v_col := qsplit._check_queue_field(i_consumer, i_batch_id, i_queue_field);
    perform qsplit._check_policies(i_consumer, i_batch_id, i_on_unknown, i_on_null, i_default_queue,
                                   i_create_limit, i_create_pattern, i_create_fallback);
    perform qsplit._check_staging(i_consumer, i_batch_id);

    -- lock the position (held to commit) and move it to this batch's cur
    -- tick; false: this batch is already applied, nothing is written
    if not qsplit._claim_position(i_consumer, i_batch_id, i_prev_tick_id, i_cur_tick_id,
                                  i_prev_tick_time, i_cur_tick_time) then
        return query select null::text, count(*), 'already_applied'::text from pg_temp.qsplit_staging;
        return;
    end if;

    -- decide, per distinct routing value, before anything is written (kept
    -- in arrays, not a temp table: the caller could have made one of its own)
    select coalesce(array_agg(p.route_value), '{}'), coalesce(array_agg(p.queue_name), '{}'),
           coalesce(array_agg(p.n_events), '{}'), coalesce(array_agg(p.action), '{}'),
           coalesce(array_agg(p.reason), '{}'), coalesce(array_agg(p.first_row), '{}'),
           coalesce(array_agg(p.last_row), '{}')
      into v_values, v_queues, v_counts, v_actions, v_reasons, v_firsts, v_lasts
      from qsplit._route_plan(i_consumer, i_queue_field, i_on_unknown, i_on_null, i_default_queue,
                              i_create_limit, i_create_pattern, i_create_fallback) p;

    -- any 'error' applies nothing (the position moved above rolls back too)
    if 'error' = any (v_actions) then
        perform qsplit._raise_route_error(i_consumer, i_batch_id, v_col, i_default_queue,
                                          array_agg(p.queue_name order by p.n_events desc, p.queue_name),
                                          array_agg(p.n_events order by p.n_events desc, p.queue_name),
                                          array_agg(p.reason order by p.n_events desc, p.queue_name))
           from unnest(v_queues, v_counts, v_actions, v_reasons) p(queue_name, n_events, action, reason)
          where p.action = 'error';
    end if;

    -- the commit that records the batch must reach the disk (or the
    -- synchronous standbys) before the driver finishes the batch on the
    -- source: whatever the server, database or role set, at least 'on'
    -- (remote_apply, stronger, is kept).  SET LOCAL: to the end of the
    -- transaction, i.e. through its commit.
    if pg_catalog.current_setting('synchronous_commit') not in ('on', 'remote_apply') then
        perform pg_catalog.set_config('synchronous_commit', 'on', true);
    end if;

    -- carry the plan out: queues to create, dead letters, event tables
    for v_queue in
        select distinct p.queue_name from unnest(v_queues, v_actions) p(queue_name, action)
         where p.action = 'create' order by 1
    loop
        perform pgq.create_queue(v_queue);
    end loop;

    if 'dead_letter' = any (v_actions) then
        perform qsplit._insert_dead_letters(i_consumer, i_batch_id, v_col, array_agg(p.route_value),
                                            array_agg(p.queue_name), array_agg(p.reason))
           from unnest(v_values, v_queues, v_actions, v_reasons) p(route_value, queue_name, action, reason)
          where p.action = 'dead_letter';
    end if;

    -- every queue's events in one INSERT, in ev_id order, each reading
    -- only the stretches of staged rows the plan found for its values
    perform qsplit._insert_routed(v_col, coalesce(array_agg(p.route_value), '{}'),
                                  coalesce(array_agg(p.queue_name), '{}'),
                                  coalesce(array_agg(p.first_row), '{}'), coalesce(array_agg(p.last_row), '{}'))
       from unnest(v_values, v_queues, v_actions, v_firsts, v_lasts) p(route_value, queue_name, action, first_row, last_row)
      where p.action in ('insert', 'create');

    -- what was done, in result words: counted for the status views in this
    -- same transaction, and returned
    select coalesce(array_agg(r.queue_name order by r.queue_name, r.action), '{}'),
           coalesce(array_agg(r.n_events order by r.queue_name, r.action), '{}'),
           coalesce(array_agg(r.action order by r.queue_name, r.action), '{}')
      into v_queues, v_counts, v_actions
      from (select p.queue_name, sum(p.n_events)::bigint as n_events,
                   qsplit._result_action(p.action) as action
              from unnest(v_queues, v_counts, v_actions) p(queue_name, n_events, action)
             group by 1, 3) r;
    perform qsplit._record_batch_stats(i_consumer, i_batch_id, v_queues, v_counts, v_actions);
    return query select * from unnest(v_queues, v_counts, v_actions);
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
