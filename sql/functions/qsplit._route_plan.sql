create or replace function qsplit._route_plan(
    in i_consumer       text,
    in i_queue_field    text,
    in i_on_unknown     text,
    in i_on_null        text,
    in i_default_queue  text,
    in i_create_limit   integer,
    in i_create_pattern text,
    in i_create_fallback text,
    out route_value     text,
    out queue_name      text,
    out n_events        bigint,
    out action          text,
    out reason          text,
    out first_row       tid,
    out last_row        tid)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._route_plan(8)
--
--      Decide, for each DISTINCT routing value staged in
--      pg_temp.qsplit_staging, where its events go.  Writes nothing: the
--      caller (qsplit.apply_batch) carries the plan out.
--
--      A value is first mapped by the consumer's route rules
--      (qsplit._route_target); then:
--        - the queue exists and takes inserts: 'insert' into it;
--        - NULL value: the on_null_queue policy;
--        - no such queue, or the queue has queue_disable_insert set: the
--          on_unknown_queue policy ('create' only for a missing queue).
--      Policies: error | skip | create | default | dead_letter.  'default'
--      sends the events to i_default_queue, which must exist and take
--      inserts, else the value's action is 'error'.
--
--      Event data must not be able to stop the consumer or exhaust the
--      server, so:
--        - a name no queue can have (longer than 1024 bytes, and no such
--          queue exists: pgq's unique index on queue_name cannot hold a
--          long one) gets reason invalid_queue_name; 'create' never tries it;
--        - 'create' makes a queue only for a name a route rule produced or
--          one matching i_create_pattern (any name when it is NULL), and
--          at most i_create_limit queues per batch (each pgq.create_queue
--          holds ~40 locks to commit; the lock table is shared by the
--          cluster), and never more than a quarter of the lock table
--          allows, the names with the most events first;
--        - the names 'create' refuses get the policy i_create_fallback
--          (error | skip | default | dead_letter), with reason
--          invalid_queue_name, create_not_allowed or create_limit.
--
-- Parameters:
--      i_consumer      - consumer name (whose route rules apply)
--      i_queue_field   - extra1..extra4 or type (see qsplit._route_column)
--      i_on_unknown    - policy for a missing or insert-disabled queue
--      i_on_null       - policy for a NULL routing value
--      i_default_queue - the queue of the 'default' policy
--      i_create_limit  - most queues 'create' makes in this batch
--      i_create_pattern - names 'create' may make (besides route rule
--                        targets); NULL: any name
--      i_create_fallback - policy for the names 'create' refuses
--
-- Returns:
--      one row per distinct routing value:
--      route_value, queue_name (where the events go; for skip, dead_letter
--      and error: the queue they wanted, NULL for a NULL value), n_events,
--      action (insert | create | skip | dead_letter | error),
--      reason (NULL for insert; else unknown_queue | null_queue |
--      insert_disabled | default_queue_missing | default_queue_disabled |
--      cannot_create_disabled | invalid_queue_name | create_not_allowed |
--      create_limit), first_row and last_row (the value's first and last
--      staged row by ctid: qsplit._insert_routed reads only that stretch,
--      so the staged batch is scanned once for both)
--
-- Calls:
--      qsplit._route_column(1), qsplit._route_target(2)
--
-- Tables directly manipulated:
--      None (reads pg_temp.qsplit_staging, pgq.queue)
-- ----------------------------------------------------------------------
declare
    v_col   text := qsplit._route_column(i_queue_field);
    -- whatever create_limit says: the queues of one batch take at most a
    -- quarter of the server's lock table (~40 locks each; 40 queues with
    -- the defaults max_locks_per_transaction 64, max_connections 100)
    v_limit integer := least(i_create_limit,
                             pg_catalog.current_setting('max_locks_per_transaction')::integer
                             * (pg_catalog.current_setting('max_connections')::integer
                                + pg_catalog.current_setting('max_prepared_transactions')::integer) / 160);
begin
    return query execute format(
        'with v as ('
        '    select s.%1$I as route_value, pg_catalog.count(*) as n,'
        '           pg_catalog.min(s.ctid) as first_row, pg_catalog.max(s.ctid) as last_row'
        '      from pg_temp.qsplit_staging s group by 1'
        -- materialized: one _route_target call per value, not one per reference
        '), w as materialized ('
        '    select v.route_value, v.n, v.first_row, v.last_row,'
        '           qsplit._route_target($1, v.route_value) as wanted'
        '      from v'
        '), st0 as ('
        '    select w.*,'
        '           case when w.route_value is null then ''null_queue'''
        '                when q.queue_name is null and pg_catalog.octet_length(w.wanted) > 1024'
        '                     then ''invalid_queue_name'''
        '                when q.queue_name is null then ''unknown_queue'''
        '                when q.queue_disable_insert and $5 then ''insert_disabled'''
        '           end as problem,'
        '           case when w.route_value is null then $3 else $2 end as policy'
        '      from w left join pgq.queue q on q.queue_name = w.wanted'
        -- the names create may make: from a rule or create_pattern, the
        -- first create_limit of them by events; the rest are refused
        '), cand as ('
        '    select st0.wanted, pg_catalog.sum(st0.n) as n,'
        '           pg_catalog.bool_or($7::text is null'
        '                   or st0.wanted operator(pg_catalog.~) (''^(?:'' || $7 || '')$'')'
        '                   or exists (select 1 from qsplit.route r'
        '                               where r.consumer_name = $1'
        '                                 and st0.route_value operator(pg_catalog.~) (''^(?:'' || r.pattern || '')$''))) as allowed'
        '      from st0 where st0.policy = ''create'' and st0.problem = ''unknown_queue'''
        '     group by st0.wanted'
        '), refused as ('
        '    select c.wanted,'
        '           case when not c.allowed then ''create_not_allowed'''
        '                when pg_catalog.row_number() over (partition by c.allowed order by c.n desc, c.wanted) > $6'
        '                     then ''create_limit'' end as refusal'
        '      from cand c'
        '), st as ('
        '    select st0.route_value, st0.n, st0.first_row, st0.last_row, st0.wanted,'
        '           coalesce(rf.refusal, st0.problem) as problem,'
        '           case when st0.policy = ''create'''
        '                 and (rf.refusal is not null or st0.problem = ''invalid_queue_name'') then $8'
        '                else st0.policy end as policy'
        '      from st0 left join refused rf'
        '        on st0.policy = ''create'' and st0.problem = ''unknown_queue'' and rf.wanted = st0.wanted'
        '), dq as ('
        '    select case when q.queue_name is null then ''default_queue_missing'''
        '                when q.queue_disable_insert and $5 then ''default_queue_disabled'''
        '           end as problem'
        '      from (select 1) one left join pgq.queue q on q.queue_name = $4'
        ')'
        'select st.route_value,'
        '       case when st.problem is not null and st.policy = ''default'' and dq.problem is null'
        '            then $4 else st.wanted end,'
        '       st.n,'
        '       case when st.problem is null then ''insert'''
        '            when st.policy = ''default'' and dq.problem is null then ''insert'''
        '            when st.policy = ''create'' and st.problem = ''unknown_queue'' then ''create'''
        '            when st.policy in (''skip'', ''dead_letter'') then st.policy'
        '            else ''error'' end,'
        '       case when st.policy = ''default'' and st.problem is not null then coalesce(dq.problem, st.problem)'
        '            when st.policy = ''create'' and st.problem = ''insert_disabled'' then ''cannot_create_disabled'''
        '            else st.problem end,'
        '       st.first_row, st.last_row'
        '  from st cross join dq',
        v_col)
        using i_consumer, i_on_unknown, i_on_null, i_default_queue,
              current_setting('session_replication_role') <> 'replica',
              v_limit, i_create_pattern, i_create_fallback;
end;
$$ language plpgsql stable
   set search_path = pg_catalog, pg_temp;
