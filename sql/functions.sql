-- ----------------------------------------------------------------------
-- qsplit function layer: the load order and the map of the API.
--
-- Every file holds one function name (overloads together), uses
-- `create or replace` only, and is re-applied by migrations/env.py each
-- time an upgrade reaches head.  Tables belong to the Alembic revisions
-- under migrations/versions/, never to these files.
--
-- Error codes (SQLSTATE class QS), raised by the functions below:
--   QS001  lost position: the target applied a tick that is neither the
--          batch's prev tick nor its cur tick
--   QS002  unknown target queue: a routing value names no queue on the target
--   QS003  NULL routing value: an event has no target queue name
--   QS004  staging table missing in this session (qsplit.prepare_staging
--          was not called on this connection)
--   QS005  unknown queue_field: not one of extra1..extra4, type
--   QS006  target queue refuses inserts (queue_disable_insert is set)
-- ----------------------------------------------------------------------

-- Group: Internal helpers
\ir functions/qsplit._route_column.sql
\ir functions/qsplit._insert_routed.sql

-- Group: Driver API
\ir functions/qsplit.prepare_staging.sql
\ir functions/qsplit.apply_batch.sql
