"""The processes a command leaves running after it exits, waited for before the bench times the next one.

`lwaffect extract` exits as soon as its work is done: its local Ray's processes (GCS, raylet, agents,
workers) end after it, and on a 2-core machine that takes about 1.5 s of both cores. A run timed back to
back with the one before would pay for that teardown in its own start-up, which a user's single command
does not. `Leftovers` makes this process the reaper of its orphaned descendants (Linux's
`PR_SET_CHILD_SUBREAPER`), so that what a command leaves behind comes back here, and `wait` waits until it
is gone (killing what outlives `timeout`), returning the seconds it took: reported beside the command's
time, never hidden in it. Elsewhere than on Linux nothing is waited for (0 s).

May import: psutil.
"""

from __future__ import annotations

import ctypes
import sys
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36  # prctl(2)


def _set_reaper(on: bool) -> bool:
    """This process as (or no longer as) the reaper of its orphaned descendants; whether that could be set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class Leftovers:
    """Within `with Leftovers() as left:` the processes a command orphans come back to this process;
    `left.wait()` after the command's exit waits until they are gone."""

    def __enter__(self) -> Leftovers:
        self.before = {p.pid for p in psutil.Process().children()}  # not the command's
        self.reaping = _set_reaper(True)
        return self

    def wait(self, timeout: float = 30.0) -> float:
        """Seconds until every process the command left running has exited; those still running after
        `timeout` seconds are killed."""
        started = time.perf_counter()
        if not self.reaping:
            return 0.0
        while True:
            left = [p for p in psutil.Process().children() if p.pid not in self.before]
            if not left:
                return time.perf_counter() - started
            _, alive = psutil.wait_procs(left, timeout=max(0.0, timeout - (time.perf_counter() - started)))
            if alive:
                for proc in alive:
                    proc.kill()
                psutil.wait_procs(alive, timeout=5)
                return time.perf_counter() - started

    def __exit__(self, *exc: object) -> None:
        if self.reaping:
            _set_reaper(False)
