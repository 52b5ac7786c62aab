create or replace function qsplit.rewind_tick(
    in  i_consumer  text,
    out tick        bigint,
    out taken_from  text)
returns record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.rewind_tick(1)
--
--      The tick qsplit-driver --rewind moves the source consumer to: the
--      last tick this target has applied for the consumer, the later of
--      qsplit's position and queue_splitter's pgq_ext.completed_tick row
--      (the original may have run after qsplit, from where qsplit
--      stopped; qsplit keeps pgq_ext in step while it runs).  Moving the
--      source consumer there makes the next batch start exactly after what
--      the target holds, so nothing is lost or applied twice; rewinding to
--      qsplit's own position alone after the original ran would apply the
--      original's batches again.
--
--      pgq_ext is read only through qsplit._pgq_ext_tick (trusted table
--      check, QS012), for this consumer only, after the consumer was
--      claimed by the caller (QS011 if it belongs to another role).
--
-- Parameters:
--      i_consumer - consumer name
--
-- Returns:
--      tick       - the tick (NULL: the target has no position)
--      taken_from - 'qsplit' or 'pgq_ext' (NULL with a NULL tick)
--
-- Errors:
--      QS011 - the consumer belongs to another role
--      QS012 - pgq_ext.completed_tick is not a trusted plain table
--
-- Calls:
--      qsplit._claim_consumer(3), qsplit._pgq_ext_tick(2)
--
-- Tables directly manipulated:
--      select - qsplit.consumer, pgq_ext.completed_tick
-- ----------------------------------------------------------------------
declare
    v_last  bigint;
    v_ext   bigint;
begin
    perform qsplit._claim_consumer(i_consumer, null,
                                   not pg_catalog.pg_has_role(session_user, 'qsplit_admin', 'MEMBER'));
    select c.last_tick_id into v_last from qsplit.consumer c where c.consumer_name = i_consumer;
    v_ext := qsplit._pgq_ext_tick(i_consumer, false);
    tick := greatest(v_last, v_ext);
    taken_from := case when tick is null then null
                       when v_ext = tick and v_last is distinct from tick then 'pgq_ext'
                       else 'qsplit' end;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
