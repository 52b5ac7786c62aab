-- ----------------------------------------------------------------------
-- qsplit privileges: who may call what.  Applied after the functions
-- each time an upgrade reaches head (GRANT and REVOKE are idempotent), so
-- a function dropped and created again never keeps PUBLIC's default
-- EXECUTE.  The roles are made by migration 0003; docs/privileges.md
-- explains how to give them to login roles.
--
--   qsplit_writer  the driver on the target: stage a batch, apply it,
--                  take over a queue_splitter position, and (as the same
--                  ini runs --reset/--unregister/--status) reset its
--                  position and read the status views
--   qsplit_admin   a DBA: routing rules and dead letters, positions, status
-- ----------------------------------------------------------------------

revoke all on all functions in schema qsplit from public;

grant usage on schema qsplit to qsplit_writer, qsplit_admin;

grant execute on function
    qsplit.prepare_staging(),
    qsplit.take_over_position(text),
    qsplit.reset_position(text),
    qsplit.rewind_tick(text),
    qsplit.pgq_ext_state(text),
    qsplit.apply_batch(text, bigint, bigint, bigint, text, text, text, text, timestamptz, timestamptz,
                       integer, text, text)
  to qsplit_writer;

grant execute on function
    qsplit.add_route(text, text, text, integer),
    qsplit.remove_route(text, text),
    qsplit.replay_dead_letters(text, text),
    qsplit.discard_dead_letters(text, text)
  to qsplit_admin;
grant select on table qsplit.route, qsplit.dead_letter to qsplit_admin;

grant execute on function qsplit.reset_position(text), qsplit.rewind_tick(text), qsplit.set_consumer_owner(text, text)
  to qsplit_admin;
grant select on table qsplit.consumer_status, qsplit.queue_status to qsplit_writer, qsplit_admin;
