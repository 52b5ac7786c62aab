create or replace function qsplit.prepare_staging()
returns void as $$
-- ----------------------------------------------------------------------
-- Function: qsplit.prepare_staging(0)
--
--      Create this session's staging table pg_temp.qsplit_staging, the
--      table the driver fills with COPY before it calls
--      qsplit.apply_batch().  Call it once per connection, in its own
--      transaction; calling it again is harmless.
--
--      Why a per-session TEMP table and not a shared unlogged one:
--        - it writes no WAL and lives in local buffers: staging costs
--          about one memory copy of the batch;
--        - every session has its own, so two drivers (even on the same
--          consumer) never see each other's rows, and no consumer key,
--          lock or cleanup is needed;
--        - ON COMMIT DELETE ROWS empties it at the end of each batch's
--          transaction, and a crashed driver leaves nothing behind: the
--          table dies with its session;
--        - no dead rows pile up, so it needs no vacuum.
--
--      The columns are those of pgq.batch_event_sql(); the driver fills
--      all of them (ev_txid and ev_retry are not inserted into target
--      queues, but a dead letter keeps the whole event), in the order of
--      the routing column, so qsplit._insert_routed finds each target
--      queue's rows as one stretch of the table.
--
--      temp_buffers is left at the server's setting: a batch of 10,000
--      events (~2 MB) fits the default 8 MB; a larger batch spills to the
--      session's temp files, which measured no slower overall in make
--      bench (the COPY got faster, the inserts slower).
--
--      Privileges: this function runs as the CALLER (not SECURITY
--      DEFINER), so the table belongs to the driver's role, which COPYs
--      into it (it needs TEMP on the database, which PUBLIC has by
--      default).  The SECURITY DEFINER functions that read it run as
--      their owner: when that owner is not the caller, it is granted
--      SELECT on the table here.
--
-- Returns:
--      nothing
--
-- Calls:
--      None
--
-- Tables directly manipulated:
--      create, grant - pg_temp.qsplit_staging
-- ----------------------------------------------------------------------
declare
    v_owner name;
begin
    if pg_catalog.to_regclass('pg_temp.qsplit_staging') is not null then
        return;
    end if;
    create temp table qsplit_staging (
        ev_id       bigint,
        ev_time     timestamptz,
        ev_txid     bigint,
        ev_retry    int4,
        ev_type     text,
        ev_data     text,
        ev_extra1   text,
        ev_extra2   text,
        ev_extra3   text,
        ev_extra4   text
    ) on commit delete rows;
    for v_owner in
        select distinct r.rolname
          from pg_catalog.pg_proc p join pg_catalog.pg_roles r on r.oid = p.proowner
         where p.pronamespace = 'qsplit'::pg_catalog.regnamespace and p.prosecdef
           and r.rolname <> current_user and not r.rolsuper
    loop
        execute format('grant select on pg_temp.qsplit_staging to %I', v_owner);
    end loop;
end;
$$ language plpgsql
   set search_path = pg_catalog, pg_temp;
