"""Where the extraction runs: the cluster address, loopback-only local Ray (without starting
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
)


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
import io, sys, time
from jobs.extract.runtime import RayStart, RuntimeConfig, ray_session

class Tee(io.TextIOBase):  # this driver's stdout, kept: what reached it from the workers
    def __init__(self, out): self.out, self.text = out, []
    def write(self, s): self.text.append(s); return self.out.write(s)
    def flush(self): self.out.flush()

sys.stdout = Tee(sys.stdout)
HELLO = "hello from a " + "worker"  # as a whole only in the worker's output

def heard(ray, within):  # a task's print reaches this driver within `within` seconds
    ray.get(ray.remote(lambda: print(HELLO, flush=True)).remote())
    end = time.monotonic() + within
    while HELLO not in "".join(sys.stdout.text) and time.monotonic() < end:
        time.sleep(0.1)
    return HELLO in "".join(sys.stdout.text)

def head(ray):  # the processes Ray started for the head node, beside those every node has
    return sorted({"monitor", "log_monitor", "dashboard"} & set(ray._private.worker._global_node.all_processes))

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
        # no autoscaler monitor, API server or log monitor, and no worker's output on this terminal
        print("head", *head(ray), "heard", heard(ray, within=3), flush=True)
        print("restored", ray._private.node.Node.start_monitor.__module__, flush=True)
    print("after session", ray.is_initialized(), flush=True)
print("after close", ray.is_initialized(), flush=True)
cfg = RuntimeConfig(num_cpus=1, temp_dir=sys.argv[1], worker_logs=True)
with RayStart(cfg, when=lambda: False) as start:  # nothing to do, it said: no early Ray
    print("skipped", start.skipped, ray.is_initialized(), flush=True)
    with ray_session(cfg, start) as resources:  # there was something after all: the session starts Ray
        print("cpus", resources["CPU"], flush=True)
        # the workers' output asked for: the log monitor runs and brings it
        print("head", *head(ray), "heard", heard(ray, within=30), flush=True)
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
    lines = [line for line in run.stdout.split("\n") if "hello from a worker" not in line]
    assert lines[:9] == ["cpus 1.0", "task 2.0", "preloaded True", "retry 100 100", "lookup ray._private.services",
                         "head heard False", "restored ray._private.node", "after session True",
                         "after close False"]  # fmt: skip
    assert lines[9:13] == [
        "skipped True False",
        "cpus 1.0",
        "head log_monitor heard True",
        "after session False",
    ]
    assert run.stdout.count("hello from a worker") == 1  # the second session's worker, not the first's
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
