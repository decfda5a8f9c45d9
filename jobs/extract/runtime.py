"""Where the pipeline runs: a local Ray started on demand, or a cluster joined.

`RuntimeConfig` holds everything about placement (address, CPUs, actor counts, batch sizes, GPU use),
kept apart from what the stages do (the pools are sized from it by `jobs.extract.plan`). `ray_session`
starts a local Ray on loopback only (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, `address="local"`, no
dashboard, quiet logs, its workers importing Ray Data as they start: `PRELOAD`, socket connections retried
every 0.1 s: `CONNECT_RETRY`, its new node looked up without Ray's one-second sleeps:
`jobs.extract.node_lookup`, no autoscaler monitor, API server or log monitor: `jobs.extract.lean_head`) or
joins a cluster (`address` or `$RAY_ADDRESS`; `RAY_AUTH_MODE=token`, which `ray start` enables by default
in Ray 2.60). Either way the stage workers' output reaches the driver's terminal only where asked
(`RuntimeConfig.worker_logs`).
`RayStart` begins that in a background thread, so that it overlaps the driver's own start-up.
`node_address` tells a stage worker which node it runs on (reported per row, listed in the run's report).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from jobs.extract.lean_head import lean_head
from jobs.extract.node_lookup import prompt_node_lookup

LOOPBACK_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0" keeps a local Ray on 127.0.0.1 (read at import)
UV_HOOK_VAR = "RAY_ENABLE_UV_RUN_RUNTIME_ENV"  # "0": workers of a local Ray start without `uv run`
# modules every worker of a local Ray imports as it starts, before it takes work: the ones Ray Data's actors
# (the stages' and its own helpers') import anyway. Ray starts its first workers while it is still starting
# (its agents keep the two cores about a third idle), so that their import happens there rather than beside
# the stages' model loading (about 1.2 s of 20 at the end-to-end bench, medians of 5 alternating runs)
PRELOAD = ("ray.data",)
# A local raylet connects to its own object store's socket as it starts; where the store's thread is not yet
# listening (on 2 busy cores, 14 of 37 starts here) it sleeps Ray's retry interval, 1 s, before the next try.
# Retry every 0.1 s instead, 100 times: the same 10 s of patience, for the workers' connections too
CONNECT_RETRY = {"raylet_client_connect_timeout_milliseconds": 100, "raylet_client_num_connect_attempts": 100}
# Ray 2.60 warns on every local start that token auth is on (its default); the rest stays at WARNING
QUIET_LOGGERS = {"ray._private.authentication.authentication_token_setup": logging.ERROR}


@dataclass(frozen=True)
class RuntimeConfig:
    """Placement of the extraction stages; nothing here changes what a stage computes."""

    address: str | None = (
        None  # Ray cluster to join ("host:port", "ray://..."); None: $RAY_ADDRESS, else local
    )
    num_cpus: int | None = None  # CPUs of a local Ray (None: the machine's cores)
    num_gpus: int | None = None  # GPUs of a local Ray (None: those Ray finds, CUDA_VISIBLE_DEVICES heeded)
    use_gpu: bool | None = None  # backbone on a GPU; None: when the cluster has one
    # where the face workers' detector runs. "cpu" also where the backbone has a GPU: following a face costs
    # a few small R-Net / O-Net calls per frame, which a GPU runs little faster than one CPU core, and each
    # face worker on the GPU starts CUDA (on an H200 machine, twelve 720p videos: 32.2 and 28.5 s launch to
    # exit with the detector on the CPU, 31.9 and 27.3 s on the GPU; README, Performance). "cuda": on the
    # backbone's GPU
    face_device: Literal["cpu", "cuda"] = "cpu"
    face_actors: int | None = None  # decode + detect + align workers; None: from the CPUs (plan_stages)
    face_cpus: float | None = None  # CPUs reserved per face worker; None: plan_stages
    backbone_actors: int | None = None  # frozen-backbone workers; None: 1 per GPU, else 1
    backbone_cpus: float | None = None  # CPUs reserved per backbone worker; None: plan_stages
    backbone_threads: int | None = None  # torch threads of a CPU backbone worker; None: plan_stages
    write_cpus: float = 0.25  # CPUs reserved for the writer (one per run: it holds every open shard)
    backbone_batch: int = 64  # rows per backbone call
    # rows per write call; None: each block as the backbone sends it, so that no summary waits for more
    # rows (the writer cuts its own row groups). Where the backbone worker writes (`StagePlan.write_joined`)
    # it writes each of its batches
    write_batch: int | None = None
    # largest Ray Data block between stages; Ray's default (128 MiB) would hold a whole short video's crops
    # (150 kB a frame) in one block, so nothing downstream starts before the video is done and the face
    # worker's memory grows with the video; 8 MiB is about one decode chunk of crops
    block_bytes: int = 8 * 2**20
    # times a stage's work (a video, a batch) is tried again after its worker process died (a node lost, a
    # worker killed for memory): Ray Data's default retries for ever, and a video that kills its worker
    # every time would then hold the run for ever; after these retries it fails and the run goes on
    task_retries: int = 1
    object_store_memory: int | None = None  # bytes of a local Ray's object store; None: Ray's default
    temp_dir: str | None = None  # a local Ray's session folder root; None: Ray's default (/tmp/ray)
    # the stage workers' own output (stdout, stderr: a library's warnings) streamed to the driver's terminal,
    # by Ray's log monitor (about 0.3 s of the command on 2 cores: README, Performance); either way it stays
    # in the Ray session's logs folder (worker-*.out / .err under TEMP_DIR/session_latest/logs, per node).
    # A stage's failures reach the driver without it: each failed video is reported with its reason
    worker_logs: bool = False


def cluster_address(cfg: RuntimeConfig) -> str | None:
    """The cluster to join, or None for a local Ray."""
    address = cfg.address or os.environ.get("RAY_ADDRESS") or None
    return None if address in (None, "local") else address


def _loopback_host(address: str) -> str | None:
    # "127.0.0.2:6379" -> "127.0.0.2"; the driver then claims that address as its node's
    if address.startswith("ray://"):
        return None  # Ray Client: the driver is not a node
    host = address.split("://")[-1].rsplit(":", 1)[0]
    return host if host.startswith("127.") else None


def _init(cfg: RuntimeConfig) -> bool:
    """Start a local Ray or join a cluster unless Ray is running in this process; whether it did."""
    import ray

    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    if ray.is_initialized():
        return False
    address = cluster_address(cfg)
    if address is None:
        _loopback_only()
        with prompt_node_lookup(), lean_head(log_monitor=cfg.worker_logs):
            ray.init(
                address="local",
                num_cpus=cfg.num_cpus or os.cpu_count(),
                num_gpus=cfg.num_gpus,
                include_dashboard=False,
                object_store_memory=cfg.object_store_memory,
                logging_level=logging.WARNING,
                log_to_driver=cfg.worker_logs,
                _temp_dir=cfg.temp_dir,
                _system_config={"preload_python_modules": list(PRELOAD), **CONNECT_RETRY},
            )
    else:
        _cluster_mode()
        _token_auth()
        # on a loopback cluster (127.0.0.x) the driver claims the address it joins as its node's
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=cfg.worker_logs,
                 _node_ip_address=_loopback_host(address))  # fmt: skip
    return True


class RayStart:
    """Ray started (local) or joined (a cluster) in a background thread, so that it overlaps the rest of the
    driver's start-up: its imports (torch, timm, the detector), the catalogue and the cache spec. Start it
    first thing, pass it to `ray_session`, which waits for it, and close it (or leave its `with` block) to
    stop the Ray it started. `when`, where given, is asked first (`jobs.extract.select.work_left`: is there
    anything to extract?); where it says no, no Ray starts early.

    The thread lives until `close`: a local Ray's processes are tied to the thread that started them
    (Linux PR_SET_PDEATHSIG) and would die with it. Ray sets its SIGTERM handler only from the main
    thread; this sets the same one (exit, so that Ray shuts down at exit) until `close`.
    """

    def __init__(self, cfg: RuntimeConfig, when: Callable[[], bool] | None = None):
        self.cfg = cfg
        self.when = when  # asked first, in the thread: False leaves Ray to `ray_session`, if needed at all
        self.skipped = False  # `when` said no
        self.began = time.perf_counter()  # when it was begun: the driver's start-up is timed from here
        self._ready, self._stop = threading.Event(), threading.Event()
        self._error: BaseException | None = None
        self._sigterm: Any = None  # the SIGTERM handler before this one, restored by `close`
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
        logging.getLogger("ray._private.worker").addFilter(_NOT_MAIN_THREAD_NOTE)
        self._thread = threading.Thread(target=self._own, name="ray-start", daemon=True)
        self._thread.start()

    def _own(self) -> None:
        try:
            self.skipped = self.when is not None and not self.when()
            started = False if self.skipped else _init(self.cfg)
        except BaseException as err:  # raised again by `wait`, in the driver's thread
            self._error = err
            started = False
        finally:
            self._ready.set()
        if started:
            self._stop.wait()
            import ray

            ray.shutdown()

    def wait(self) -> None:
        """Block until Ray is up; raise what starting it raised."""
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the Ray this started (after it finished starting)."""
        self._stop.set()
        self._thread.join()
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None

    def __enter__(self) -> RayStart:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NotMainThreadNote(logging.Filter):
    # Ray's note that it set no SIGTERM handler from a thread: `RayStart` sets it
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


_NOT_MAIN_THREAD_NOTE = _NotMainThreadNote()


@contextlib.contextmanager
def ray_session(cfg: RuntimeConfig, start: RayStart | None = None) -> Iterator[dict[str, float]]:
    """Ray for the duration of the block: one begun by `start` (stopped by its owner), one already running
    in this process, or else one joined or started locally here (and stopped after: also where `start`
    skipped starting it); yields resources."""
    import ray

    if start is not None:
        start.wait()
    started = _init(cfg) if start is None or start.skipped else False
    _quiet_data()
    try:
        yield ray.cluster_resources()
    finally:
        if started:
            ray.shutdown()


def node_address() -> str:
    """IP address of the Ray node this worker runs on ("local" outside Ray)."""
    import ray

    return ray.util.get_node_ip_address() if ray.is_initialized() else "local"


def _token_auth() -> None:
    """Join with token auth unless RAY_AUTH_MODE says otherwise (an explicit address never turns it on)."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    try:  # Ray reads the mode once at import: refresh it in this process too
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        _enable_token_auth()
    except ImportError:
        pass


def _cluster_mode() -> None:
    # undo `_loopback_only` of an earlier local session in this process: a cluster needs real addresses,
    # and its workers may need Ray's uv hook to get this environment on other machines
    from ray._private import ray_constants

    if os.environ.get(LOOPBACK_VAR) == "0":
        del os.environ[LOOPBACK_VAR]
        ray_constants.ENABLE_RAY_CLUSTER = not ray_constants.IS_WINDOWS_OR_OSX
    if os.environ.get(UV_HOOK_VAR) == "0":
        del os.environ[UV_HOOK_VAR]
        ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = True


def _loopback_only() -> None:
    # read by Ray when it is imported; set it for the processes this driver starts, and for this one
    os.environ[LOOPBACK_VAR] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    # a driver started by `uv run` makes Ray start every worker through `uv run` too (Ray's uv hook),
    # which re-syncs the environment per worker; a local Ray's workers already share this interpreter
    os.environ[UV_HOOK_VAR] = "0"
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False


def _quiet_data() -> None:
    from ray.data import DataContext
    from ray.util.debug import log_once

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the extraction prints its own per-video progress
    log_once("ray_data_progress_manager_disabled")  # and needs no warning that Ray Data's are off
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset "execution finished" lines
