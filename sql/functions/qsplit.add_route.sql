create or replace function qsplit.add_route(
    i_consumer  text,
    i_pattern   text,
    i_target    text,
    i_priority  integer default null)
returns integer as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.add_route(4)
--
--      Add (or change) a routing rule of a consumer: events whose routing
--      value (queue_field) matches i_pattern go to the queue i_target.
--      The pattern is a POSIX regular expression matched against the WHOLE
--      value (it is anchored for you); an exact name is a pattern too
--      (escape its dots: 'queue\.event1').  i_target may use \1 .. \9 for
--      the pattern's groups.  The rules of a consumer are tried by
--      ascending priority, the first match wins; no match: the value
--      itself is the queue name.  A new rule goes after the existing ones
--      unless i_priority is given; adding a pattern again changes its
--      target (and priority, when given).  Takes effect with the next
--      batch.
--
-- Parameters:
--      i_consumer  - consumer name (pgq_consumer_id of the driver)
--      i_pattern   - POSIX regex on the routing value
--      i_target    - target queue name, may use \1 .. \9
--      i_priority  - lower is tried first; default: after the last rule
--
-- Returns:
--      the rule's priority
--
-- Errors:
--      QS010 - invalid pattern, a back-reference in it (matching could take
--              unbounded time), empty target, or priority taken
--
-- Calls:
--      qsplit._route_pattern_problem(1)
--
-- Tables directly manipulated:
--      insert, update - qsplit.route
-- ----------------------------------------------------------------------
declare
    v_priority integer;
    v_problem  text;
begin
    if coalesce(i_consumer, '') = '' or i_pattern is null or coalesce(i_target, '') = '' then
        raise exception 'qsplit: add_route needs a consumer, a pattern and a non-empty target (got %, %, %)',
                coalesce(quote_literal(i_consumer), 'NULL'), coalesce(quote_literal(i_pattern), 'NULL'),
                coalesce(quote_literal(i_target), 'NULL')
            using errcode = 'QS010';
    end if;
    v_problem := qsplit._route_pattern_problem(i_pattern);
    if v_problem is not null then
        raise exception 'qsplit: consumer "%": route pattern % is refused: %',
                i_consumer, quote_literal(i_pattern), v_problem
            using errcode = 'QS010',
                  hint = 'Patterns are POSIX regular expressions (PostgreSQL ~) without back-references, matched against the whole routing value; use [0-9] or \d for a digit.';
    end if;

    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('qsplit.route:' || i_consumer));
    select coalesce(i_priority, r.priority) into v_priority
      from qsplit.route r where r.consumer_name = i_consumer and r.pattern = i_pattern;
    if not found then
        select coalesce(i_priority, coalesce(max(r.priority), 0) + 10) into v_priority
          from qsplit.route r where r.consumer_name = i_consumer;
    end if;
    if exists (select 1 from qsplit.route r
                where r.consumer_name = i_consumer and r.priority = v_priority and r.pattern <> i_pattern) then
        raise exception 'qsplit: consumer "%": route priority % is taken by another pattern', i_consumer, v_priority
            using errcode = 'QS010',
                  hint = 'Pick another priority, or remove that rule first (qsplit.remove_route).';
    end if;

    insert into qsplit.route as r (consumer_name, priority, pattern, target)
        values (i_consumer, v_priority, i_pattern, i_target)
        on conflict (consumer_name, pattern)
        do update set target = excluded.target, priority = excluded.priority;
    return v_priority;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
