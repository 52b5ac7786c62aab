"""TEST-ONLY stand-in for Skytools 3's queue_splitter, on the real library
it runs on (python-pgq's SerialConsumer, skytools' DBScript): the ini
section [queue_splitter3], src_db/dst_db, each event into the target queue
named by its queue_field (default extra1) with pgq.bulk_insert_events, and
pgq_ext.get_last_tick/set_last_tick on the target, all inherited from
SerialConsumer.  Run as a program, like the original:

    python tests/original_splitter.py [--register|--rewind|--reset|-s|...] my.ini

ORIGINAL_FAILPOINT=after_target_commit@N: SIGKILL itself right after the
N-th batch's target commit, before pgq.finish_batch (the crash window the
original's is_batch_done covers).  Written for the interop tests from the
documented behaviour of queue_splitter; not shipped.
"""

from __future__ import annotations

import os
import signal
import sys

import pgq

FIELDS = ["type", "data", "extra1", "extra2", "extra3", "extra4", "time"]


class TestQueueSplitter(pgq.SerialConsumer):
    def __init__(self, args: list[str]) -> None:
        super().__init__("queue_splitter3", "src_db", "dst_db", args)
        point, _, count = os.environ.get("ORIGINAL_FAILPOINT", "").partition("@")
        self._kill_after = int(count or 1) if point == "after_target_commit" else 0

    def process_remote_batch(self, db, batch_id, ev_list, dst_db) -> None:
        field = self.cf.get("queue_field", "extra1")
        by_queue: dict[str, list[list]] = {}
        for ev in ev_list:
            row = [ev.type, ev.data, ev.extra1, ev.extra2, ev.extra3, ev.extra4, ev.time]
            by_queue.setdefault(getattr(ev, field), []).append(row)
        curs = dst_db.cursor()
        for queue, rows in by_queue.items():
            pgq.bulk_insert_events(curs, rows, FIELDS, queue)

    def process_batch(self, db, batch_id, event_list) -> None:
        # SerialConsumer: check pgq_ext, apply, set_last_tick, target commit
        super().process_batch(db, batch_id, event_list)
        if self._kill_after:
            self._kill_after -= 1
            if self._kill_after == 0:
                os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    TestQueueSplitter(sys.argv[1:]).start()
