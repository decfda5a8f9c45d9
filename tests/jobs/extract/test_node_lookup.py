"""The local Ray's node lookup on a scripted GCS node table: a look every poll until the node registers,
then Ray's own lookup; a node that never registers fails the start after Ray's patience."""

from __future__ import annotations

import pytest


def scripted_gcs(monkeypatch, tables: list[list[dict]]) -> tuple[list[str], list[float]]:
    """The GCS's node table, one of `tables` per look (the last one from then on), behind Ray's node lookup,
    and a clock for `jobs.extract.node_lookup` that a sleep moves on instead of waiting; what was asked of it (its
    looks and Ray's own lookup) and the sleeps."""
    from ray._private import services, state

    from jobs.extract import node_lookup

    asked: list[str] = []

    class View:
        def _initialize_global_state(self, options) -> None:
            asked.append("connect")

        def node_table(self) -> list[dict]:
            asked.append("table")
            return tables[min(asked.count("table") - 1, len(tables) - 1)]

        def disconnect(self) -> None:
            asked.append("disconnect")

    def ray_lookup(gcs_address: str, node_id: str) -> dict:  # Ray's: sleeps 1 s between its own looks
        asked.append(f"ray {gcs_address} {node_id}")
        return {"node_id": node_id}

    slept: list[float] = []

    class Clock:  # node_lookup's `time`, where only the lookup asks it
        @staticmethod
        def monotonic() -> float:
            return sum(slept)

        @staticmethod
        def sleep(seconds: float) -> None:
            slept.append(seconds)

    monkeypatch.setattr(services, "get_node", ray_lookup)
    monkeypatch.setattr(services, "_get_gcs_client_options", lambda address: address)
    monkeypatch.setattr(state, "GlobalState", View)
    monkeypatch.setattr(node_lookup, "time", Clock)
    return asked, slept


def test_a_starting_node_is_looked_up_every_poll_until_it_registers_then_by_ray(monkeypatch):
    from ray._private import services

    from jobs.extract import node_lookup

    tables = [[], [{"NodeID": "ab", "Alive": False}], [{"NodeID": "cd", "Alive": True}],
              [{"NodeID": "cd", "Alive": True}, {"NodeID": "ab", "Alive": True}]]  # fmt: skip
    asked, slept = scripted_gcs(monkeypatch, tables)  # registers at the fourth look
    ray_lookup = services.get_node
    with node_lookup.prompt_node_lookup():
        assert services.get_node("127.0.0.1:6379", "ab") == {"node_id": "ab"}
    assert asked == ["connect", "table", "table", "table", "table", "disconnect", "ray 127.0.0.1:6379 ab"]
    assert slept == [node_lookup.NODE_POLL_S] * 3
    assert services.get_node is ray_lookup  # Ray's own lookup again after the start


def test_a_starting_node_that_never_registers_fails_the_start_after_ray_s_patience_not_twice_it(monkeypatch):
    from ray._private import services

    from jobs.extract import node_lookup

    asked, slept = scripted_gcs(monkeypatch, [[{"NodeID": "cd", "Alive": True}]])  # never lists "ab"
    monkeypatch.setattr(
        node_lookup, "NODE_POLL_S", node_lookup.NODE_WAIT_S / 4
    )  # four sleeps to the deadline
    ray_lookup = services.get_node
    with node_lookup.prompt_node_lookup():
        with pytest.raises(
            RuntimeError, match=r"Ray node ab .* GCS at 127\.0\.0\.1:6379 within 30 s; .*raylet\.out"
        ):
            services.get_node("127.0.0.1:6379", "ab")
    assert asked == ["connect"] + ["table"] * 5 + ["disconnect"]  # Ray's lookup, 30 s more, is not asked
    assert sum(slept) == node_lookup.NODE_WAIT_S
    assert services.get_node is ray_lookup
