"""A local Ray's lookup of the node it starts, without Ray's one-second sleeps: `prompt_node_lookup`.

Ray (2.60) looks its new node up in the GCS once and, where the raylet has not registered yet, sleeps a
whole second before the next look (its C++ `GlobalStateAccessor::GetNode`). The raylet registers only once
its runtime-env agent, a Python process, is up: about 0.75 s after its launch on 2 cores, so each local
start waited a second for a node that was there after 0.75. For the duration of the local `ray.init`
(`jobs.extract.runtime`), `prompt_node_lookup` puts a lookup in front of Ray's that asks the GCS's node
table every NODE_POLL_S and hands over to Ray's once the node is listed alive. The right fix is in Ray's
C++ lookup (a shorter retry interval, or a wait on the registration); this one replaces the module attribute
`ray._private.services.get_node` for the block only, and a Ray without these internals keeps its own lookup.

May import: ray (inside the functions).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

NODE_POLL_S = 0.05  # seconds between two looks at the node table
NODE_WAIT_S = 30.0  # Ray's own patience with a starting raylet (`raylet_start_wait_time_s`), not twice it


@contextlib.contextmanager
def prompt_node_lookup() -> Iterator[None]:
    """For the block, Ray's lookup of the node it starts (`ray._private.services.get_node`) first asks the
    GCS every NODE_POLL_S until the node has registered, and raises where it has not after
    NODE_WAIT_S; Ray's own lookup is restored after. A Ray without these internals keeps its own lookup."""
    from ray._private import services, state

    lookup = getattr(services, "get_node", None)
    if lookup is None or not hasattr(state.GlobalState, "node_table"):
        yield
        return

    def prompt(gcs_address: str, node_id: str) -> Any:
        view = state.GlobalState()
        view._initialize_global_state(services._get_gcs_client_options(gcs_address))
        try:
            registered = until_registered(view, node_id)
        finally:
            view.disconnect()
        if not registered:  # Ray's lookup would wait as long again before it gave up
            raise RuntimeError(
                f"the Ray node {node_id} started here did not register with its GCS at {gcs_address} within "
                f"{NODE_WAIT_S:.0f} s; its raylet's log (raylet.out, under the Ray session's logs folder) "
                "says why"
            )
        return lookup(gcs_address, node_id)

    services.get_node = prompt
    try:
        yield
    finally:
        services.get_node = lookup


def until_registered(view: Any, node_id: str) -> bool:
    """Whether the GCS behind `view` (a `GlobalState`) lists `node_id` alive within NODE_WAIT_S (it returns
    as soon as it does)."""
    deadline = time.monotonic() + NODE_WAIT_S
    while True:
        if any(node["NodeID"] == node_id and node["Alive"] for node in view.node_table()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(NODE_POLL_S)
