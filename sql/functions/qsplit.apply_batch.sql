create or replace function qsplit.apply_batch(
    in i_consumer       text,
    in i_batch_id       bigint,
    in i_prev_tick_id   bigint,
    in i_cur_tick_id    bigint,
    in i_queue_field    text default 'extra1',
    out queue_name      text,
    out n_events        bigint,
    out action          text)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.apply_batch(5)
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
--      queue, never a statement per event (qsplit._insert_routed).
--
-- Parameters:
--      i_consumer      - consumer name (the source consumer, pgq_consumer_id)
--      i_batch_id      - source batch id (for messages and the position row)
--      i_prev_tick_id  - the batch's prev_tick_id from pgq.next_batch*
--      i_cur_tick_id   - the batch's cur_tick_id from pgq.next_batch*
--      i_queue_field   - event field naming the target queue: extra1 (default),
--                        extra2, extra3, extra4 or type
--
-- Returns:
--      one row per target queue: (queue_name, n_events, 'inserted');
--      a batch that was already applied: one row (NULL, staged rows,
--      'already_applied') and nothing written.
--
-- Errors:
--      QS001 - lost position; QS002 - unknown target queue;
--      QS003 - NULL routing value; QS004 - staging table missing;
--      QS005 - unknown queue_field; QS006 - target queue refuses inserts.
--      Each error names the consumer and the batch; its HINT says what to do.
-- ----------------------------------------------------------------------
declare
    v_col       text;
    v_last_tick bigint;
    v_queues    text[];
    v_counts    bigint[];
    v_missing   text[];
    v_disabled  text[];
    v_null_cnt  bigint;
begin
    v_col := qsplit._route_column(i_queue_field);
    if pg_catalog.to_regclass('pg_temp.qsplit_staging') is null then
        raise exception 'qsplit: consumer "%" batch %: staging table pg_temp.qsplit_staging does not exist in this session',
                i_consumer, i_batch_id
            using errcode = 'QS004',
                  hint = 'Call qsplit.prepare_staging() once on this connection, then COPY the batch into pg_temp.qsplit_staging.';
    end if;

    -- lock the consumer's position: a second driver on the same consumer
    -- waits here and then sees this batch as already applied
    insert into qsplit.consumer as c (consumer_name)
        values (i_consumer)
        on conflict (consumer_name) do nothing;
    select c.last_tick_id into v_last_tick
        from qsplit.consumer c
        where c.consumer_name = i_consumer
        for update;

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
                  hint = 'Reposition the source consumer at the target''s tick (qsplit-driver --rewind), or make the target forget its position (qsplit-driver --reset) if you know the events are handled.';
    end if;

    -- the new position commits with the events or not at all: any error
    -- below rolls back both
    update qsplit.consumer c
        set last_tick_id = i_cur_tick_id,
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
                  hint = format('Enable inserts again: select pgq.set_queue_config(%L, ''queue_disable_insert'', ''false'');', v_disabled[1]);
    end if;

    -- every routing value names its own queue
    return query
        select r.queue_name, r.n_events, 'inserted'::text
          from qsplit._insert_routed(v_col, v_queues, v_queues) r;

    return;
end;
$$ language plpgsql;
