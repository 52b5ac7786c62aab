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
    out queue_name      text,
    out n_events        bigint,
    out action          text)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.apply_batch(10)
--
--      Apply one source batch, staged by COPY in pg_temp.qsplit_staging,
--      to the target queues: each event goes into the queue its
--      queue_field names (mapped by the consumer's route rules, see
--      qsplit.add_route), in source ev_id order, and the consumer's
--      position moves to the batch's cur tick in the same transaction.  The
--      caller commits; a batch is applied exactly once because the position
--      and the events commit together.
--
--      The consumer's position row is locked first, so two drivers on one
--      consumer wait for each other and the second one finds the batch
--      already applied.  Position check (as pgq_ext does it):
--        - no position yet, or position = i_prev_tick_id: apply;
--        - position = i_cur_tick_id: already applied (a replay after a
--          crash between the target commit and pgq.finish_batch): skip;
--        - anything else: QS001, nothing applied.
--      Tick ids start at 1 in every queue, so an id alone cannot tell two
--      sources apart (two shards splitting into one target under the same
--      consumer name, or a source queue dropped and re-created).  The
--      position also keeps the source's tick time: when both sides know it,
--      a matching id with another time is QS007, never a silent skip.
--      Where each DISTINCT routing value goes is decided first, for the
--      whole batch (qsplit._route_plan), with the policies for a missing
--      or insert-disabled queue and for a NULL value: error | skip |
--      create | default | dead_letter.  Any 'error' applies nothing.
--      Events keep ev_time, ev_type, ev_data and ev_extra1..4; the target
--      assigns ev_id and ev_txid; ev_retry is dropped.  Routing is
--      set-based: one INSERT ... SELECT per target queue, never a
--      statement per event.
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
--      QS008 - bad policy or default queue; QS009 - staging table not genuine.
--      Each error names the consumer and the batch; its HINT says what to do.
-- ----------------------------------------------------------------------
declare
    v_col       text;
    v_last_tick bigint;
    v_last_time timestamptz;
    v_tick_time timestamptz;
    v_plan      record;
    v_table     regclass;
    v_values    text[];
    v_queues    text[];
    v_counts    bigint[];
    v_actions   text[];
    v_reasons   text[];
begin
    v_col := qsplit._route_column(i_queue_field);
    if v_col is null then
        raise exception 'qsplit: consumer "%" batch %: unknown queue_field %',
                i_consumer, i_batch_id, coalesce(quote_literal(i_queue_field), 'NULL')
            using errcode = 'QS005',
                  detail = 'queue_field names the event field that holds the target queue name.',
                  hint = 'Set queue_field to one of extra1, extra2, extra3, extra4, type.';
    end if;
    perform qsplit._check_policies(i_consumer, i_batch_id, i_on_unknown, i_on_null, i_default_queue);
    perform qsplit._check_staging(i_consumer, i_batch_id);

    -- lock the consumer's position: a second driver on the same consumer
    -- waits here and then sees this batch as already applied
    insert into qsplit.consumer as c (consumer_name)
        values (i_consumer)
        on conflict (consumer_name) do nothing;
    select c.last_tick_id, c.last_tick_time into v_last_tick, v_last_time
        from qsplit.consumer c
        where c.consumer_name = i_consumer
        for update;

    -- the recorded tick time must be the one of the tick it is compared with
    v_tick_time := case v_last_tick when i_cur_tick_id then i_cur_tick_time
                                    when i_prev_tick_id then i_prev_tick_time end;
    if v_last_time is not null and v_tick_time is not null and v_last_time <> v_tick_time then
        raise exception 'qsplit: consumer "%" batch %: the target position (tick % of %) was written by another source queue; this batch''s tick % is of %',
                i_consumer, i_batch_id, v_last_tick, v_last_time, v_last_tick, v_tick_time
            using errcode = 'QS007',
                  detail = 'Tick ids restart at 1 in every queue: two source queues (another database, or a re-created queue) are using one consumer name on this target. Nothing was applied.',
                  hint = format('Give each source its own consumer name (pgq_consumer_id or job_name). If the source queue was re-created on purpose, forget the old position: qsplit-driver --reset <config.ini> (on the target: select qsplit.reset_position(%L);).', i_consumer);
    end if;

    if v_last_tick = i_cur_tick_id then
        queue_name := null;
        select count(*) into n_events from pg_temp.qsplit_staging;
        action := 'already_applied';
        return next;
        return;
    elsif v_last_tick is distinct from i_prev_tick_id and v_last_tick is not null then
        raise exception 'qsplit: consumer "%" lost its position: batch % covers ticks % to %, but the target has applied up to tick %',
                i_consumer, i_batch_id, i_prev_tick_id, i_cur_tick_id, v_last_tick
            using errcode = 'QS001',
                  detail = 'The source consumer and the target position disagree, so applying this batch could lose or double events.',
                  hint = format('Either reposition the source consumer at the target''s tick: qsplit-driver --rewind <config.ini> (on the source: select pgq.register_consumer_at(<queue>, %L, %s);), or, if the events up to this batch are handled, make the target forget its position: qsplit-driver --reset <config.ini> (on the target: select qsplit.reset_position(%L);).',
                                i_consumer, v_last_tick, i_consumer);
    end if;

    -- the new position commits with the events or not at all: any error
    -- below rolls back both
    update qsplit.consumer c
        set last_tick_id = i_cur_tick_id,
            last_tick_time = i_cur_tick_time,
            last_batch_id = i_batch_id,
            last_applied_at = now()
        where c.consumer_name = i_consumer;

    -- decide, per distinct routing value, before anything is written; an
    -- 'error' anywhere applies nothing.  (The plan is kept in arrays, not
    -- in a temp table: the caller could have put one of its own making in
    -- the way.)
    select coalesce(array_agg(p.route_value), '{}'), coalesce(array_agg(p.queue_name), '{}'),
           coalesce(array_agg(p.n_events), '{}'), coalesce(array_agg(p.action), '{}'),
           coalesce(array_agg(p.reason), '{}')
      into v_values, v_queues, v_counts, v_actions, v_reasons
      from qsplit._route_plan(i_consumer, i_queue_field, i_on_unknown, i_on_null, i_default_queue) p;
    if 'error' = any (v_actions) then
        perform qsplit._raise_route_error(i_consumer, i_batch_id, v_col, i_default_queue,
                                          array_agg(p.queue_name order by p.n_events desc, p.queue_name),
                                          array_agg(p.n_events order by p.n_events desc, p.queue_name),
                                          array_agg(p.reason order by p.n_events desc, p.queue_name))
           from unnest(v_queues, v_counts, v_actions, v_reasons) p(queue_name, n_events, action, reason)
          where p.action = 'error';
    end if;

    -- carry the plan out: queues to create, dead letters, event tables
    for v_plan in
        select distinct p.queue_name from unnest(v_queues, v_actions) p(queue_name, action)
         where p.action = 'create' order by 1
    loop
        perform pgq.create_queue(v_plan.queue_name);
    end loop;

    if 'dead_letter' = any (v_actions) then
        -- equality joins only (hashable), NULLs in their own branch: a
        -- batch with one routing value per event must not cost a nested loop
        execute format(
            'with p as ('
            '    select * from unnest($4, $5, $6, $7) u(route_value, queue_name, action, reason)'
            '     where u.action = ''dead_letter'''
            ')'
            'insert into qsplit.dead_letter (consumer_name, batch_id, queue_field, route_value, queue_name, reason,'
            '       ev_id, ev_time, ev_txid, ev_retry, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)'
            ' select $1, $2, $3, d.route_value, d.queue_name, d.reason,'
            '        d.ev_id, d.ev_time, d.ev_txid, d.ev_retry, d.ev_type, d.ev_data, d.ev_extra1, d.ev_extra2, d.ev_extra3, d.ev_extra4'
            '   from (select p.route_value, p.queue_name, p.reason, s.*'
            '           from pg_temp.qsplit_staging s join p on p.route_value = s.%1$I'
            '         union all'
            '         select p.route_value, p.queue_name, p.reason, s.*'
            '           from pg_temp.qsplit_staging s join p on p.route_value is null'
            '          where s.%1$I is null) d'
            '  order by d.ev_id',
            v_col)
            using i_consumer, i_batch_id, substr(v_col, 4), v_values, v_queues, v_actions, v_reasons;
    end if;

    for v_plan in
        select p.queue_name,
               coalesce(array_agg(p.route_value) filter (where p.route_value is not null), '{}') as route_values,
               bool_or(p.route_value is null) as with_null
          from unnest(v_values, v_queues, v_actions) p(route_value, queue_name, action)
         where p.action in ('insert', 'create')
         group by p.queue_name order by p.queue_name
    loop
        v_table := pgq.current_event_table(v_plan.queue_name)::regclass;
        execute format(
            'insert into %s (ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)'
            ' select s.ev_time, s.ev_type, s.ev_data, s.ev_extra1, s.ev_extra2, s.ev_extra3, s.ev_extra4'
            '   from pg_temp.qsplit_staging s where s.%2$I = any ($1) or ($2 and s.%2$I is null) order by s.ev_id',
            v_table, v_col)
            using v_plan.route_values, v_plan.with_null;
    end loop;

    -- exact counts for the status views, in this same transaction
    perform qsplit._record_batch_stats(i_consumer, i_batch_id, v_queues, v_counts, v_actions);

    return query
        select p.queue_name, sum(p.n_events)::bigint,
               case p.action when 'insert' then 'inserted' when 'create' then 'created'
                             when 'skip' then 'skipped' else p.action end
          from unnest(v_queues, v_counts, v_actions) p(queue_name, n_events, action)
         group by p.queue_name, p.action
         order by 1, 3;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
