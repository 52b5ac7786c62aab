create or replace function qsplit.apply_batch(
    in i_consumer       text,
    in i_batch_id       bigint,
    in i_prev_tick_id   bigint,
    in i_cur_tick_id    bigint,
    in i_queue_field    text default 'extra1',
    in i_prev_tick_time timestamptz default null,
    in i_cur_tick_time  timestamptz default null,
    out queue_name      text,
    out n_events        bigint,
    out action          text)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.apply_batch(7)
--
--      Apply one source batch, staged by COPY in pg_temp.qsplit_staging,
--      to the target queues: each event goes into the queue named by its
--      queue_field, in source ev_id order, and the consumer's position
--      moves to the batch's cur tick in the same transaction.  The caller
--      commits; a batch is applied exactly once because the position and
--      the events commit together.
--
--      The consumer's position row is locked first, so two drivers on one
--      consumer wait for each other and the second one finds the batch
--      already applied.  Position check (as pgq_ext does it):
--        - no position yet, or position = i_prev_tick_id: apply;
--        - position = i_cur_tick_id: already applied (a replay after a
--          crash between the target commit and pgq.finish_batch): skip;
--        - anything else: QS001, nothing applied.
--      Every routing value is checked before any row is written, so a bad
--      batch applies nothing.  Events keep ev_time, ev_type, ev_data and
--      ev_extra1..4; the target assigns ev_id and ev_txid; ev_retry is
--      dropped.  Routing is set-based: one INSERT ... SELECT per target
--      queue, never a statement per event.
--
-- Parameters:
--      i_consumer      - consumer name (the source consumer, pgq_consumer_id)
--      i_batch_id      - source batch id (for messages and the position row)
--      i_prev_tick_id  - the batch's prev_tick_id from pgq.next_batch*
--      i_cur_tick_id   - the batch's cur_tick_id from pgq.next_batch*
--      i_queue_field   - event field naming the target queue: extra1 (default),
--                        extra2, extra3, extra4 or type
--      i_prev_tick_time, i_cur_tick_time - the batch's tick times from
--                        pgq.next_batch* (NULL: check tick ids only)
--
-- Returns:
--      one row per target queue: (queue_name, n_events, 'inserted');
--      a batch that was already applied: one row (NULL, staged rows,
--      'already_applied') and nothing written.
--
-- Errors:
--      QS001 - lost position; QS002 - unknown target queue;
--      QS003 - NULL routing value; QS004 - staging table missing;
--      QS005 - unknown queue_field; QS006 - target queue refuses inserts;
--      QS007 - the position was written by another source queue.
--      Each error names the consumer and the batch; its HINT says what to do.
-- ----------------------------------------------------------------------
declare
    v_col       text;
    v_last_tick bigint;
    v_last_time timestamptz;
    v_tick_time timestamptz;
    v_queues    text[];
    v_counts    bigint[];
    v_missing   text[];
    v_disabled  text[];
    v_null_cnt  bigint;
    v_table     regclass;
    v_i         int;
begin
    v_col := qsplit._route_column(i_queue_field);
    if v_col is null then
        raise exception 'qsplit: consumer "%" batch %: unknown queue_field %',
                i_consumer, i_batch_id, coalesce(quote_literal(i_queue_field), 'NULL')
            using errcode = 'QS005',
                  detail = 'queue_field names the event field that holds the target queue name.',
                  hint = 'Set queue_field to one of extra1, extra2, extra3, extra4, type.';
    end if;
    if pg_catalog.to_regclass('pg_temp.qsplit_staging') is null then
        raise exception 'qsplit: consumer "%" batch %: staging table pg_temp.qsplit_staging does not exist in this session',
                i_consumer, i_batch_id
            using errcode = 'QS004',
                  detail = 'The driver COPYs each batch into this session''s staging table before calling qsplit.apply_batch().',
                  hint = 'Call qsplit.prepare_staging() once on this connection, then COPY the batch into pg_temp.qsplit_staging.';
    end if;

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
                  hint = 'Give each source its own consumer name (pgq_consumer_id or job_name). If the source queue was re-created on purpose, forget the old position: delete from qsplit.consumer where consumer_name = ' || quote_literal(i_consumer) || ';';
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
                  hint = format('Either reposition the source consumer at the target''s tick (on the source: select pgq.register_consumer_at(<queue>, %L, %s);), or, if the events up to this batch are handled, make the target forget its position (on the target: delete from qsplit.consumer where consumer_name = %L;).',
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

    -- the routing values of this batch and their sizes, in one pass
    execute format(
        'select array_agg(r.q order by r.q) filter (where r.q is not null),'
        '       array_agg(r.n order by r.q) filter (where r.q is not null),'
        '       coalesce(sum(r.n) filter (where r.q is null), 0)'
        '  from (select s.%1$I as q, count(*) as n'
        '          from pg_temp.qsplit_staging s group by s.%1$I) r',
        v_col)
        into v_queues, v_counts, v_null_cnt;

    if v_null_cnt > 0 then
        raise exception 'qsplit: consumer "%" batch %: % event(s) have NULL in %, so they name no target queue',
                i_consumer, i_batch_id, v_null_cnt, v_col
            using errcode = 'QS003',
                  detail = 'Nothing of this batch was applied; the batch stays open on the source and is retried.',
                  hint = 'Fix the producer so every event carries its target queue name in ' || v_col || ', or route NULLs with a policy once one is configured.';
    end if;
    if v_queues is null then
        return;     -- an empty batch moves only the position
    end if;

    select array_agg(w.q order by w.q) into v_missing
        from unnest(v_queues) w(q)
        where not exists (select 1 from pgq.queue pq where pq.queue_name = w.q);
    if v_missing is not null then
        raise exception 'qsplit: consumer "%" batch %: target queue % does not exist',
                i_consumer, i_batch_id, quote_literal(v_missing[1])
            using errcode = 'QS002',
                  detail = format('Missing target queue(s): %s. Nothing of this batch was applied; the batch stays open on the source and is retried.',
                                  array_to_string(array(select quote_literal(m) from unnest(v_missing) m), ', ')),
                  hint = format('Create the queue on the target (select pgq.create_queue(%L);) or fix the producer.', v_missing[1]);
    end if;

    select array_agg(pq.queue_name order by pq.queue_name) into v_disabled
        from pgq.queue pq
        where pq.queue_name = any (v_queues) and pq.queue_disable_insert
          and current_setting('session_replication_role') <> 'replica';
    if v_disabled is not null then
        raise exception 'qsplit: consumer "%" batch %: target queue % refuses inserts (queue_disable_insert is set)',
                i_consumer, i_batch_id, quote_literal(v_disabled[1])
            using errcode = 'QS006',
                  detail = 'Nothing of this batch was applied; the batch stays open on the source and is retried.',
                  hint = format('Find out who disabled it (londiste and pgq_node do, on purpose); to enable inserts: update pgq.queue set queue_disable_insert = false where queue_name = %L;', v_disabled[1]);
    end if;

    for v_i in 1 .. array_length(v_queues, 1) loop
        v_table := pgq.current_event_table(v_queues[v_i])::regclass;
        execute format(
            'insert into %s (ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)'
            ' select s.ev_time, s.ev_type, s.ev_data, s.ev_extra1, s.ev_extra2, s.ev_extra3, s.ev_extra4'
            '   from pg_temp.qsplit_staging s where s.%I = $1 order by s.ev_id',
            v_table, v_col)
            using v_queues[v_i];
        queue_name := v_queues[v_i];
        n_events := v_counts[v_i];
        action := 'inserted';
        return next;
    end loop;

    -- exact counts for the status views, in this same transaction
    perform qsplit._record_batch_stats(i_consumer, i_batch_id, v_queues, v_counts);
    return;
end;
$$ language plpgsql;
