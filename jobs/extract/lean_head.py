"""A local Ray without the head-node processes a run on one machine has no use for: `lean_head`.

Beside its GCS and raylet (and the raylet's two agents), `ray.init` starts three Python processes on a
head node: the autoscaler monitor, which has nothing to scale on a local node of fixed size; the API
server, which with the dashboard off loads only Ray's usage-stats reporter; and the log monitor, which
streams every worker's output to the driver. On 2 cores each takes 0.35 to 0.45 s of CPU while Ray and
the stage workers start, on the command's critical path (README, Performance). For the duration of the
local `ray.init` (`jobs.extract.runtime`), `lean_head` makes the head node skip the first two, and the log
monitor unless the workers' output is wanted on the driver's terminal (`RuntimeConfig.worker_logs`; it
stays in the Ray session's logs folder either way). Ray 2.60's `ray.init` has no setting for these (its
`RayParams.no_monitor` and `include_log_monitor` are set only by Ray's own tools), so this replaces the
three `Node` methods that start them for the block; a Ray without these methods starts them all.

May import: ray (inside the functions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# the `ray._private.node.Node` methods that start each process
MONITOR, API_SERVER, LOG_MONITOR = "start_monitor", "start_api_server", "start_log_monitor"


@contextlib.contextmanager
def lean_head(log_monitor: bool = False) -> Iterator[None]:
    """For the block, a head node that Ray starts runs no autoscaler monitor, no API server, and a log
    monitor only where `log_monitor`; Ray's methods are restored after."""
    from ray._private.node import Node

    skipped = [MONITOR, API_SERVER] + ([] if log_monitor else [LOG_MONITOR])
    if not all(callable(Node.__dict__.get(name)) for name in skipped):
        yield
        return
    own = {name: Node.__dict__[name] for name in skipped}
    for name in skipped:
        setattr(Node, name, _skip)
    try:
        yield
    finally:
        for name, method in own.items():
            setattr(Node, name, method)


def _skip(self: object, *args: object, **kwargs: object) -> None:
    """In place of a `Node` method that starts a process: start none. (Without the API server the node
    keeps its dashboard address None, as where Ray's minimal install cannot start one.)"""
