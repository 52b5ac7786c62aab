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
--   QS007  the consumer's target position was written by another source
--          queue (same tick id, other tick time)
--   QS008  bad routing policy, or the default queue is missing / refuses inserts
--   QS009  pg_temp.qsplit_staging is not the plain temp table
--          qsplit.prepare_staging makes (refused inside SECURITY DEFINER code)
--   QS010  bad route rule (invalid regex, empty target, priority taken,
--          back-reference)
--   QS011  the consumer belongs to another role (see qsplit.set_consumer_owner)
--   QS012  pgq_ext.completed_tick is not a plain table of trusted making
--          (superuser or qsplit owner); nothing of it was read
--   QS013  the batch has no tick time, but the consumer's position has one
-- ----------------------------------------------------------------------

-- Group: Internal helpers
\ir functions/qsplit._quote_value.sql
\ir functions/qsplit._claim_consumer.sql
\ir functions/qsplit._pgq_ext_table.sql
\ir functions/qsplit._route_pattern_problem.sql
\ir functions/qsplit._route_column.sql
\ir functions/qsplit._check_queue_field.sql
\ir functions/qsplit._check_policies.sql
\ir functions/qsplit._check_staging.sql
\ir functions/qsplit._pgq_ext_tick.sql
\ir functions/qsplit._pgq_ext_set_tick.sql
\ir functions/qsplit._raise_lost_position.sql
\ir functions/qsplit._raise_position_error.sql
\ir functions/qsplit._claim_position.sql
\ir functions/qsplit._route_target.sql
\ir functions/qsplit._route_plan.sql
\ir functions/qsplit._raise_route_error.sql
\ir functions/qsplit._result_action.sql
\ir functions/qsplit._record_batch_stats.sql
\ir functions/qsplit._insert_dead_letters.sql
\ir functions/qsplit._insert_routed.sql

-- Group: Driver API
\ir functions/qsplit.prepare_staging.sql
\ir functions/qsplit.apply_batch.sql

-- Group: Consumer management
\ir functions/qsplit.take_over_position.sql
\ir functions/qsplit.reset_position.sql
\ir functions/qsplit.rewind_tick.sql
\ir functions/qsplit.pgq_ext_state.sql
\ir functions/qsplit.set_consumer_owner.sql

-- Group: Routing rules and dead letters (DBA API)
\ir functions/qsplit.add_route.sql
\ir functions/qsplit.remove_route.sql
\ir functions/qsplit.replay_dead_letters.sql
\ir functions/qsplit.discard_dead_letters.sql

-- Group: Status views
\ir views/qsplit.queue_status.sql
\ir views/qsplit.consumer_status.sql

-- Group: Privileges (after every function exists)
\ir privileges.sql
