create or replace function qsplit._route_plan(
    in i_consumer       text,
    in i_queue_field    text,
    in i_on_unknown     text,
    in i_on_null        text,
    in i_default_queue  text,
    out route_value     text,
    out queue_name      text,
    out n_events        bigint,
    out action          text,
    out reason          text)
returns setof record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._route_plan(5)
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
-- Parameters:
--      i_consumer      - consumer name (whose route rules apply)
--      i_queue_field   - extra1..extra4 or type (see qsplit._route_column)
--      i_on_unknown    - policy for a missing or insert-disabled queue
--      i_on_null       - policy for a NULL routing value
--      i_default_queue - the queue of the 'default' policy
--
-- Returns:
--      one row per distinct routing value:
--      route_value, queue_name (where the events go; for skip, dead_letter
--      and error: the queue they wanted, NULL for a NULL value), n_events,
--      action (insert | create | skip | dead_letter | error),
--      reason (NULL for insert; else unknown_queue | null_queue |
--      insert_disabled | default_queue_missing | default_queue_disabled |
--      cannot_create_disabled)
--
-- Calls:
--      qsplit._route_column(1), qsplit._route_target(2)
--
-- Tables directly manipulated:
--      None (reads pg_temp.qsplit_staging, pgq.queue)
-- ----------------------------------------------------------------------
declare
    v_col text := qsplit._route_column(i_queue_field);
begin
    return query execute format(
        'with v as ('
        '    select s.%I as route_value, pg_catalog.count(*) as n'
        '      from pg_temp.qsplit_staging s group by 1'
        -- materialized: one _route_target call per value, not one per reference
        '), w as materialized ('
        '    select v.route_value, v.n, qsplit._route_target($1, v.route_value) as wanted'
        '      from v'
        '), st as ('
        '    select w.*,'
        '           case when w.route_value is null then ''null_queue'''
        '                when q.queue_name is null then ''unknown_queue'''
        '                when q.queue_disable_insert and $5 then ''insert_disabled'''
        '           end as problem,'
        '           case when w.route_value is null then $3 else $2 end as policy'
        '      from w left join pgq.queue q on q.queue_name = w.wanted'
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
        '            else st.problem end'
        '  from st cross join dq',
        v_col)
        using i_consumer, i_on_unknown, i_on_null, i_default_queue,
              current_setting('session_replication_role') <> 'replica';
end;
$$ language plpgsql stable;
