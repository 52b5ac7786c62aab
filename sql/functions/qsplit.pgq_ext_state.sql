create or replace function qsplit.pgq_ext_state(
    in  i_consumer      text,
    out has_pgq_ext     boolean,
    out ext_tick        bigint,
    out qsplit_tick     bigint)
returns record as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.pgq_ext_state(1)
--
--      What the driver checks at start: whether this target has
--      queue_splitter's tracking table (pgq_ext.completed_tick), the
--      consumer's tick there, and qsplit's own position.  A target with
--      the table but no row and no position for the consumer usually means
--      the ini file gives another consumer name than the one the original
--      ran under (e.g. its other section): the driver warns, since the
--      original's batches would then be applied again.
--
--      pgq_ext is read only through qsplit._pgq_ext_tick (trusted table
--      check, QS012), for this consumer only; an existing consumer must
--      belong to the caller (QS011), and none is created here.
--
-- Parameters:
--      i_consumer - consumer name
--
-- Returns:
--      has_pgq_ext - pgq_ext.completed_tick exists
--      ext_tick    - the consumer's tick there (NULL: no row)
--      qsplit_tick - qsplit's position (NULL: none)
--
-- Errors:
--      QS011 - the consumer belongs to another role
--      QS012 - pgq_ext.completed_tick is not a trusted plain table
--
-- Calls:
--      qsplit._claim_consumer(3), qsplit._pgq_ext_table(1), qsplit._pgq_ext_tick(2)
--
-- Tables directly manipulated:
--      select - qsplit.consumer, pgq_ext.completed_tick
-- ----------------------------------------------------------------------
declare
    v_owner oid;
begin
    -- an existing consumer must be the caller's; none is made here, and,
    -- as in qsplit.take_over_position, no lock is taken: a batch being
    -- applied holds the row, and a driver starting meanwhile must not wait
    select c.owner_role, c.last_tick_id into v_owner, qsplit_tick
      from qsplit.consumer c where c.consumer_name = i_consumer;
    if found and v_owner is not null
       and not pg_catalog.pg_has_role(session_user, 'qsplit_admin', 'MEMBER')
       and not exists (select 1 from pg_catalog.pg_roles r
                        where r.oid = v_owner and pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')) then
        perform qsplit._claim_consumer(i_consumer);  -- raises QS011
    end if;
    has_pgq_ext := qsplit._pgq_ext_table(false) is not null;
    ext_tick := case when has_pgq_ext then qsplit._pgq_ext_tick(i_consumer, false) end;
end;
$$ language plpgsql security definer
   set search_path = pg_catalog, pg_temp;
