"""Run a command as a child and report its own peak RSS and wall time.

A child forked from the bench itself would inherit the bench's high-water
mark (Linux carries the pre-exec RSS of a fork into ru_maxrss), so the bench
starts this small launcher, which forks and execs the command and reads the
command's rusage with wait4.  Prints one JSON line on stdout:
{"exit": <exit code>, "seconds": <wall time>, "maxrss_kib": <peak RSS>}.
"""

import json
import os
import sys
import time


def main() -> int:
    argv = sys.argv[1:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - started
    print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "seconds": elapsed, "maxrss_kib": usage.ru_maxrss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
