create or replace function qsplit._route_target(
    i_consumer      text,
    i_route_value   text)
returns text as $$
-- ----------------------------------------------------------------------
-- Function: qsplit._route_target(2)
--
--      The target queue name a routing value maps to for a consumer: the
--      first rule of qsplit.route (lowest priority number) whose pattern
--      matches the WHOLE value gives the name, its \1..\9 filled from the
--      pattern's groups; no matching rule: the value itself.  Called once
--      per distinct routing value of a batch, never per event.
--
-- Parameters:
--      i_consumer      - consumer name
--      i_route_value   - the routing value (queue_field of an event)
--
-- Returns:
--      the target queue name; NULL for a NULL value
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      None (reads qsplit.route)
-- ----------------------------------------------------------------------
    select coalesce(
        (select pg_catalog.regexp_replace(i_route_value, '^(?:' || r.pattern || ')$', r.target)
           from qsplit.route r
          where r.consumer_name = i_consumer
            and i_route_value operator(pg_catalog.~) ('^(?:' || r.pattern || ')$')
          order by r.priority
          limit 1),
        i_route_value);
$$ language sql stable;
