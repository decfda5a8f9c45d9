"""Where the extraction runs: stage sizing, the cluster address, loopback-only local Ray (without starting
Ray), and a Ray started in a background thread (in a child process)."""

from __future__ import annotations

import os

import pytest

from jobs.extract.runtime import (
    LOOPBACK_VAR,
    UV_HOOK_VAR,
    RuntimeConfig,
    _cluster_mode,
    _loopback_host,
    _loopback_only,
    cluster_address,
    plan_stages,
)


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 16, 64])
def test_stage_pools_never_reserve_every_cpu(cpus):
    plan = plan_stages(RuntimeConfig(), cpus, 0)
    assert plan.reserved_cpus <= cpus - 0.25 or cpus < 2
    assert plan.reserved_cpus <= cpus
    assert plan.face_actors >= 1 and plan.backbone_actors >= 1 and plan.device == "cpu"
    if cpus >= 16:
        assert plan.face_actors >= cpus // 2  # the face stage is the expensive one: most CPUs go there


def test_two_cores_leave_room_for_every_stage():
    plan = plan_stages(RuntimeConfig(), 2, 0)
    assert (plan.face_actors, plan.face_cpus, plan.backbone_cpus, plan.write_cpus) == (1, 1.0, 0.5, 0.25)
    assert plan.reserved_cpus < 2


def test_gpu_plan_and_refusals():
    plan = plan_stages(RuntimeConfig(), 16, 1)
    assert plan.device == "cuda" and plan.backbone_gpus == 1.0 and plan.face_gpus > 0
    assert plan_stages(RuntimeConfig(use_gpu=False), 16, 1).device == "cpu"
    with pytest.raises(RuntimeError, match="GPU"):
        plan_stages(RuntimeConfig(), 4, 0, device="cuda")
    with pytest.raises(RuntimeError, match="reserve"):
        plan_stages(RuntimeConfig(face_actors=4, face_cpus=1.0), 2, 0)


def test_cluster_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_address(RuntimeConfig()) is None
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6380")
    assert cluster_address(RuntimeConfig()) == "127.0.0.2:6380"
    assert cluster_address(RuntimeConfig(address="local")) is None
    assert _loopback_host("127.0.0.2:6380") == "127.0.0.2"
    assert _loopback_host("10.0.0.5:6379") is None


def test_a_local_ray_stays_on_loopback_without_uv_and_a_cluster_gets_both_back(monkeypatch):
    from ray._private import ray_constants

    for name in (LOOPBACK_VAR, UV_HOOK_VAR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    monkeypatch.setattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", True)
    _loopback_only()
    assert os.environ[LOOPBACK_VAR] == "0" and os.environ[UV_HOOK_VAR] == "0"
    assert not ray_constants.ENABLE_RAY_CLUSTER and not ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV
    _cluster_mode()
    assert LOOPBACK_VAR not in os.environ and UV_HOOK_VAR not in os.environ
    assert ray_constants.ENABLE_RAY_CLUSTER and ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV


RAY_START = """
import sys
from jobs.extract.runtime import RayStart, RuntimeConfig, ray_session
cfg = RuntimeConfig(num_cpus=1, temp_dir=sys.argv[1])
with RayStart(cfg) as start:
    import torch  # the driver's own start-up goes on meanwhile
    import ray
    with ray_session(cfg, start) as resources:
        print("cpus", resources["CPU"], flush=True)
        print("task", ray.get(ray.remote(lambda: torch.ones(2).sum().item()).remote()), flush=True)
        # a worker of the local Ray imported Ray Data as it started (nothing in the task imports it)
        print("preloaded", ray.get(ray.remote(lambda: "ray.data" in sys.modules).remote()), flush=True)
        # its processes retry a socket connection every 0.1 s, not every 1 s (Ray's default)
        retry = lambda: (ray._raylet.Config.raylet_client_connect_timeout_milliseconds(),
                         ray._raylet.Config.raylet_client_num_connect_attempts())  # fmt: skip
        print("retry", *ray.get(ray.remote(retry).remote()), flush=True)
        # and the driver looks nodes up with Ray's own lookup again once Ray has started
        print("lookup", ray._private.services.get_node.__module__, flush=True)
    print("after session", ray.is_initialized(), flush=True)
print("after close", ray.is_initialized(), flush=True)
with RayStart(cfg, when=lambda: False) as start:  # nothing to do, it said: no early Ray
    print("skipped", start.skipped, ray.is_initialized(), flush=True)
    with ray_session(cfg, start) as resources:  # there was something after all: the session starts Ray
        print("cpus", resources["CPU"], flush=True)
    print("after session", ray.is_initialized(), flush=True)
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ray_started_in_a_thread_runs_tasks_and_stops_on_close_or_is_left_to_the_session(tmp_path):
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import psutil

    temp = tempfile.mkdtemp(prefix="lwr", dir="/tmp")  # Ray's socket paths must stay short
    repo = Path(__file__).resolve().parents[3]
    try:
        run = subprocess.run([sys.executable, "-c", RAY_START, temp], cwd=repo, capture_output=True, text=True,
                             timeout=110)  # fmt: skip
    finally:
        left = [p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])]
        shutil.rmtree(temp, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split("\n")[:7] == ["cpus 1.0", "task 2.0", "preloaded True", "retry 100 100",
                                          "lookup ray._private.services", "after session True",
                                          "after close False"]  # fmt: skip
    assert run.stdout.split("\n")[7:10] == ["skipped True False", "cpus 1.0", "after session False"]
    assert "SIGTERM handler is not set" not in run.stderr
    assert left == [], left  # closing stopped the local Ray it started


def test_work_left_is_a_subject_without_a_shard_file(tmp_path, synth_affwild2):
    from jobs.extract.select import work_left
    from pipeline.cache.layout import shard_file

    cache = tmp_path / "cache"
    one = "1-25-640x360"
    assert work_left(synth_affwild2, str(cache), names=(one,))  # no cache yet
    (cache / "shards").mkdir(parents=True)
    (cache / shard_file(one)).write_bytes(b"")  # only its name counts: opening it needs the backbone
    (cache / shard_file("2-30-1280x720")).with_name(".tmp-x-2-30-1280x720.parquet.tmp").write_bytes(b"")
    assert not work_left(synth_affwild2, str(cache), names=(one,))
    assert work_left(synth_affwild2, str(cache), names=(one,), rebuild=True)
    assert work_left(synth_affwild2, str(cache), names=(one, "2-30-1280x720"))  # a temporary file is no shard
    assert not work_left(synth_affwild2, str(cache), split="test", names=(one,))  # 1-25 is a train subject
    assert not work_left(tmp_path / "no-such-input", str(cache))  # the extraction says what is wrong
    assert not work_left(synth_affwild2, str(cache), names=("no-such-subject",))


def scripted_gcs(monkeypatch, tables: list[list[dict]]) -> tuple[list[str], list[float]]:
    """The GCS's node table, one of `tables` per look (the last one from then on), behind Ray's node lookup,
    and a clock for `jobs.extract.runtime` that a sleep moves on instead of waiting; what was asked of it (its
    looks and Ray's own lookup) and the sleeps."""
    from ray._private import services, state

    from jobs.extract import runtime

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

    class Clock:  # runtime's `time`, where only the lookup asks it
        @staticmethod
        def monotonic() -> float:
            return sum(slept)

        @staticmethod
        def sleep(seconds: float) -> None:
            slept.append(seconds)

    monkeypatch.setattr(services, "get_node", ray_lookup)
    monkeypatch.setattr(services, "_get_gcs_client_options", lambda address: address)
    monkeypatch.setattr(state, "GlobalState", View)
    monkeypatch.setattr(runtime, "time", Clock)
    return asked, slept


def test_a_starting_node_is_looked_up_every_poll_until_it_registers_then_by_ray(monkeypatch):
    from ray._private import services

    from jobs.extract import runtime

    tables = [[], [{"NodeID": "ab", "Alive": False}], [{"NodeID": "cd", "Alive": True}],
              [{"NodeID": "cd", "Alive": True}, {"NodeID": "ab", "Alive": True}]]  # fmt: skip
    asked, slept = scripted_gcs(monkeypatch, tables)  # registers at the fourth look
    ray_lookup = services.get_node
    with runtime._prompt_node_lookup():
        assert services.get_node("127.0.0.1:6379", "ab") == {"node_id": "ab"}
    assert asked == ["connect", "table", "table", "table", "table", "disconnect", "ray 127.0.0.1:6379 ab"]
    assert slept == [runtime.NODE_POLL_S] * 3
    assert services.get_node is ray_lookup  # Ray's own lookup again after the start


def test_a_starting_node_that_never_registers_fails_the_start_after_ray_s_patience_not_twice_it(monkeypatch):
    from ray._private import services

    from jobs.extract import runtime

    asked, slept = scripted_gcs(monkeypatch, [[{"NodeID": "cd", "Alive": True}]])  # never lists "ab"
    monkeypatch.setattr(runtime, "NODE_POLL_S", runtime.NODE_WAIT_S / 4)  # four sleeps to the deadline
    ray_lookup = services.get_node
    with runtime._prompt_node_lookup():
        with pytest.raises(
            RuntimeError, match=r"Ray node ab .* GCS at 127\.0\.0\.1:6379 within 30 s; .*raylet\.out"
        ):
            services.get_node("127.0.0.1:6379", "ab")
    assert asked == ["connect"] + ["table"] * 5 + ["disconnect"]  # Ray's lookup, 30 s more, is not asked
    assert sum(slept) == runtime.NODE_WAIT_S
    assert services.get_node is ray_lookup
