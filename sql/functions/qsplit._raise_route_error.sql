create or replace function qsplit._raise_route_error(
    i_consumer      text,
    i_batch_id      bigint,
    i_column        text,
    i_default_queue text,
    i_queues        text[],
    i_counts        bigint[],
    i_reasons       text[])
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._raise_route_error(7)
--
--      Raise the error for routing values whose policy is 'error'.  The
--      first entry (the queue most events want) names the error; the
--      DETAIL lists every one with its event count and reason.
--
-- Parameters:
--      i_consumer, i_batch_id - for the message
--      i_column        - the staging column routed on (ev_extra1, ...)
--      i_default_queue - the default queue (for its errors)
--      i_queues, i_counts, i_reasons - the routing values in error: the
--                        queue each wanted (NULL: NULL value), how many
--                        events, why (see qsplit._route_plan)
--
-- Errors:
--      QS002 - unknown target queue; QS003 - NULL routing value;
--      QS006 - target queue refuses inserts; QS008 - default queue unusable.
--
-- Calls:
--      qsplit._quote_value(1): every value quoted in the message
--
-- Tables directly manipulated:
--      None
-- ----------------------------------------------------------------------
declare
    v_queue  text := i_queues[1];
    v_n      bigint := i_counts[1];
    v_reason text := i_reasons[1];
    v_detail text;
begin
    -- the first ten, biggest first, and how many more: one event per
    -- routing value must not make a message of a million names
    select 'all routing values in error: '
           || string_agg(format('%s (%s event%s, %s)',
                                case when length(q) > 200
                                     then qsplit._quote_value(left(q, 200)) || format('... (%s characters)', length(q))
                                     else qsplit._quote_value(q) end, n,
                                case when n = 1 then '' else 's' end, r), ', ' order by i)
                filter (where i <= 10)
           || case when count(*) > 10 then format(' and %s more', count(*) - 10) else '' end
      into v_detail
      from unnest(i_queues, i_counts, i_reasons) with ordinality e(q, n, r, i);

    if v_reason in ('invalid_queue_name', 'create_not_allowed', 'create_limit') then
        raise exception 'qsplit: consumer "%" batch %: % (% event(s) want it)',
                i_consumer, i_batch_id,
                case v_reason
                    when 'invalid_queue_name' then format('a routing value of %s bytes names no queue (pgq cannot hold a queue name that long)', octet_length(v_queue))
                    when 'create_not_allowed' then format('queue %s may not be created: no route rule names it and it does not match create_pattern', qsplit._quote_value(left(v_queue, 200)))
                    else format('queue %s is beyond create_limit, the most queues one batch may create', qsplit._quote_value(left(v_queue, 200)))
                end, v_n
            using errcode = 'QS002', detail = v_detail,
                  hint = 'Fix the producer, map such values with qsplit.add_route(), widen create_pattern / create_limit, '
                         'or set create_fallback (on_unknown_queue = create) or on_unknown_queue to skip | default | dead_letter and reload (-r).';
    elsif v_reason = 'unknown_queue' then
        raise exception 'qsplit: consumer "%" batch %: target queue % does not exist (% event(s) want it)',
                i_consumer, i_batch_id, qsplit._quote_value(v_queue), v_n
            using errcode = 'QS002', detail = v_detail,
                  hint = format('Create it on the target (select pgq.create_queue(%s);), map the name with qsplit.add_route(), '
                                'or set on_unknown_queue = skip | create | default | dead_letter and reload (-r).',
                                qsplit._quote_value(v_queue));
    elsif v_reason = 'null_queue' then
        raise exception 'qsplit: consumer "%" batch %: % event(s) have NULL in %, so they name no target queue',
                i_consumer, i_batch_id, v_n, i_column
            using errcode = 'QS003', detail = v_detail,
                  hint = 'Fix the producer so every event carries its target queue name in ' || i_column
                         || ', or set on_null_queue = skip | default | dead_letter and reload (-r).';
    elsif v_reason in ('insert_disabled', 'cannot_create_disabled') then
        raise exception 'qsplit: consumer "%" batch %: target queue % refuses inserts (queue_disable_insert is set; % event(s) want it)',
                i_consumer, i_batch_id, qsplit._quote_value(v_queue), v_n
            using errcode = 'QS006', detail = v_detail,
                  hint = format('Enable inserts again: update pgq.queue set queue_disable_insert = false where queue_name = %s; '
                                'or set on_unknown_queue = skip | default | dead_letter and reload (-r).',
                                qsplit._quote_value(v_queue));
    else
        raise exception 'qsplit: consumer "%" batch %: default queue % %',
                i_consumer, i_batch_id, qsplit._quote_value(i_default_queue),
                case v_reason when 'default_queue_disabled' then 'refuses inserts (queue_disable_insert is set)'
                              else 'does not exist' end
            using errcode = 'QS008', detail = v_detail,
                  hint = format('Create it (select pgq.create_queue(%s);) or set default_queue to an existing queue.',
                                qsplit._quote_value(i_default_queue));
    end if;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
