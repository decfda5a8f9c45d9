"""Stage pools sized on a cluster: never every CPU reserved, room for every stage, GPUs and refusals."""

from __future__ import annotations

import pytest

from jobs.extract.plan import JOIN_WRITE_BELOW_CPUS, plan_stages
from jobs.extract.runtime import RuntimeConfig, ray_session


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


def test_the_writer_joins_the_one_cpu_backbone_worker_of_a_small_cluster_only():
    # one backbone worker on a few CPUs writes too; a GPU backbone, a pool of several or a cluster with
    # many face workers keeps a writer apart
    joined = plan_stages(RuntimeConfig(), 2, 0)
    assert joined.write_joined and "write in the backbone worker (+ 0.25 CPU)" in joined.describe()
    assert plan_stages(RuntimeConfig(), JOIN_WRITE_BELOW_CPUS - 1, 0).write_joined
    for apart in (
        plan_stages(RuntimeConfig(), JOIN_WRITE_BELOW_CPUS, 0),
        plan_stages(RuntimeConfig(), 16, 1),
        plan_stages(RuntimeConfig(backbone_actors=2), 6, 0),
    ):
        assert not apart.write_joined and "write 1 x 0.25 CPU" in apart.describe()


def test_gpu_plan_and_refusals():
    plan = plan_stages(RuntimeConfig(), 16, 1)
    assert plan.device == "cuda" and plan.backbone_gpus == 1.0
    assert plan.face_device == "cpu" and plan.face_gpus == 0  # the detector stays on the CPU by default
    assert "GPU" not in plan.describe().split(",")[0]
    for cpus, gpus in ((16, 1), (64, 1), (32, 2), (4, 1)):  # the pools never ask for more GPU than there is
        on_gpu = plan_stages(RuntimeConfig(face_device="cuda"), cpus, gpus)
        assert on_gpu.face_device == "cuda" and on_gpu.face_gpus > 0 and on_gpu.backbone_gpus == 0.5
        assert gpus - 0.001 * on_gpu.face_actors <= on_gpu.reserved_gpus <= gpus  # shares rounded down
        assert on_gpu.describe().startswith(f"faces {on_gpu.face_actors} x 1 CPU + {on_gpu.face_gpus:g} GPU")
    with pytest.raises(RuntimeError, match="reserve 3 GPUs"):
        plan_stages(RuntimeConfig(backbone_actors=3), 16, 2)
    with pytest.raises(RuntimeError, match="only where the backbone does"):
        plan_stages(RuntimeConfig(face_device="cuda"), 16, 1, device="cpu")
    assert plan_stages(RuntimeConfig(use_gpu=False), 16, 1).device == "cpu"
    with pytest.raises(RuntimeError, match="GPU"):
        plan_stages(RuntimeConfig(), 4, 0, device="cuda")
    with pytest.raises(RuntimeError, match="reserve"):
        plan_stages(RuntimeConfig(face_actors=4, face_cpus=1.0), 2, 0)


def test_no_more_face_workers_than_videos():
    # a face worker takes a whole video: the pool, its GPU shares and the plan the run prints say so
    plan = plan_stages(RuntimeConfig(), 16, 0, videos=2)
    assert plan.face_actors == 2 and plan.describe().startswith("faces 2 x 1 CPU")
    assert (
        plan_stages(RuntimeConfig(), 16, 0, videos=100).face_actors
        == plan_stages(RuntimeConfig(), 16, 0).face_actors
    )
    few = plan_stages(RuntimeConfig(face_device="cuda"), 16, 1, videos=2)
    assert few.face_actors == 2 and few.face_gpus == 0.25


def test_every_pool_of_a_gpu_plan_is_placed_at_once(tmp_path_factory):
    # a real local Ray that has one GPU (Ray places by the resources it is told of; nothing here uses the
    # GPU): every worker of the plan's pools holds its CPU and GPU shares at the same time
    import ray

    cfg = RuntimeConfig(
        num_cpus=4, num_gpus=1, face_device="cuda", temp_dir=str(tmp_path_factory.mktemp("ray"))
    )
    with ray_session(cfg) as resources:
        assert resources["GPU"] == 1
        plan = plan_stages(cfg, resources["CPU"], resources["GPU"], "cuda")
        assert plan.face_actors == 2 and plan.reserved_gpus == 1

        @ray.remote
        class Worker:
            def ready(self) -> bool:
                return True

        def start(n: int, cpus: float, gpus: float) -> list:
            return [Worker.options(num_cpus=cpus, num_gpus=gpus).remote() for _ in range(n)]

        # a whole GPU for the backbone beside the face workers' shares (the plan of before) waits for them
        faces = start(plan.face_actors, plan.face_cpus, plan.face_gpus)
        ray.get([w.ready.remote() for w in faces], timeout=120)
        backbone = start(1, plan.backbone_cpus, 1.0)
        whole = backbone[0].ready.remote()
        assert ray.wait([whole], timeout=3)[1], "a whole GPU was placed beside the face workers' shares"
        for w in faces:
            ray.kill(w)
        assert ray.get(whole, timeout=120)  # placed once they are gone
        ray.kill(backbone[0])
        # the plan's own pools are all placed at once
        workers = start(plan.face_actors, plan.face_cpus, plan.face_gpus)
        workers += start(plan.backbone_actors, plan.backbone_cpus, plan.backbone_gpus)
        if not plan.write_joined:
            workers += start(1, plan.write_cpus, 0)
        calls = [w.ready.remote() for w in workers]
        ready, waiting = ray.wait(calls, num_returns=len(calls), timeout=120)
        assert not waiting, f"{len(waiting)} of {len(calls)} workers not placed: {plan.describe()}"
