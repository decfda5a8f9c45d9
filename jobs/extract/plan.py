"""How the extraction's stage pools are sized on a cluster: `plan_stages` -> a `StagePlan`.

The CPU reservations of the pools never add up to every CPU: on 2 cores an actor pool that claims all CPUs
starves the other stages and Ray Data waits "backpressured" forever. Explicit settings of the
`RuntimeConfig` (`jobs.extract.runtime`) win over the sizes derived from the cluster's CPUs and GPUs.

May import: jobs.extract.runtime (its config only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobs.extract.runtime import RuntimeConfig

FACE_GPU_ALONE = "the face detector can run on a GPU only where the backbone does (--device cuda)"
# below this many CPUs, and with one backbone worker on the CPU, that worker also writes: the face workers
# keep every core busy, so a writer of its own overlaps nothing and costs a process's start. With more, the
# one writer (about 1.3 ms of CPU per frame) may be what holds the run back: it writes beside the backbone,
# not between its batches
JOIN_WRITE_BELOW_CPUS = 8


@dataclass(frozen=True)
class StagePlan:
    """Pool sizes and reservations of the three stages on a given cluster."""

    face_actors: int  # decode + detect + align workers
    face_cpus: float  # CPUs reserved per face worker
    face_threads: int  # torch threads per face worker
    face_gpus: float  # GPU share per face worker (detector on the GPU)
    face_device: str  # "cuda" or "cpu": where the face workers' detector runs
    backbone_actors: int  # frozen-backbone workers
    backbone_cpus: float  # CPUs reserved per backbone worker
    backbone_gpus: float  # GPUs per backbone worker
    backbone_threads: int  # torch threads per backbone worker
    write_cpus: float  # CPUs reserved for the writer (one)
    device: str  # "cuda" or "cpu": where the backbone and detector run
    # the writer runs inside the one backbone (or crop) worker instead of in a worker of its own: on a small
    # CPU-only cluster, one process fewer to start and no maps passed between processes save more than
    # overlapping the write with the next batch gains (`JOIN_WRITE_BELOW_CPUS`)
    write_joined: bool = False

    @property
    def reserved_cpus(self) -> float:
        return self.face_actors * self.face_cpus + self.backbone_actors * self.backbone_cpus + self.write_cpus

    @property
    def reserved_gpus(self) -> float:
        return self.face_actors * self.face_gpus + self.backbone_actors * self.backbone_gpus

    def describe(self) -> str:
        return (
            f"faces {self.face_actors} x {self.face_cpus:g} CPU"
            + (f" + {self.face_gpus:g} GPU" if self.face_gpus else "")
            + ", "
            f"backbone {self.backbone_actors} x {self.backbone_cpus:g} CPU"
            + (
                f" + {self.backbone_gpus:g} GPU"
                if self.backbone_gpus
                else f" ({self.backbone_threads} threads)"
            )
            + (
                f", write in the backbone worker (+ {self.write_cpus:g} CPU)"
                if self.write_joined
                else f", write 1 x {self.write_cpus:g} CPU"
            )
            + f" on {self.device}"
        )


def plan_stages(
    cfg: RuntimeConfig, cpus: float, gpus: float, device: str | None = None, videos: int | None = None
) -> StagePlan:
    """Stage pools for a cluster with `cpus` CPUs and `gpus` GPUs, for `videos` videos (None: any number);
    explicit settings in `cfg` win. A face worker takes a whole video, so there are never more than videos.

    CPU only: one backbone worker holding a quarter of the CPUs (at least half of one), the face workers
    one CPU each for the rest, minus a quarter of a CPU left free. On 2 CPUs: faces 1 x 1, backbone
    1 x 0.5, write 0.25 (1.75 of 2 reserved). With one backbone worker on the CPU and fewer than
    `JOIN_WRITE_BELOW_CPUS` CPUs, the writer runs inside it (`StagePlan.write_joined`); otherwise in a
    worker of its own. With a GPU the backbone runs on it, and the face workers' detector too where
    `cfg.face_device` is "cuda" (each worker then takes a share of it).
    """
    gpu = (gpus >= 1 if cfg.use_gpu is None else cfg.use_gpu) if device is None else device == "cuda"
    if gpu and gpus < 1:
        raise RuntimeError("a GPU was asked for but the Ray cluster has none")
    face_gpu = cfg.face_device == "cuda"
    if face_gpu and not gpu:
        raise RuntimeError(FACE_GPU_ALONE)
    write = cfg.write_cpus
    if gpu:
        backbone_actors = cfg.backbone_actors or max(1, int(gpus))
        backbone_cpus = cfg.backbone_cpus if cfg.backbone_cpus is not None else 1.0
        # a whole GPU per backbone worker, or half of one where the face workers share the GPUs
        backbone_gpus, threads = (0.5 if face_gpu else 1.0), 1
    else:
        backbone_actors = cfg.backbone_actors or 1
        backbone_cpus = (
            cfg.backbone_cpus if cfg.backbone_cpus is not None else max(0.5, float(int(cpus // 4)))
        )
        backbone_gpus = 0.0
        threads = cfg.backbone_threads or max(1, int(round(backbone_cpus)))
    left = cpus - backbone_actors * backbone_cpus - write - 0.25
    face_cpus = cfg.face_cpus if cfg.face_cpus is not None else (1.0 if left >= 1 else max(0.25, left))
    face_actors = cfg.face_actors or max(1, int(left // face_cpus))
    face_actors = min(face_actors, videos) if videos else face_actors  # a face worker takes a whole video
    # the face workers share what the backbone leaves, rounded down: a pool that asks for more GPU than the
    # cluster has is never placed whole, and the backbone would wait for the face workers to end
    face_gpus = (
        math.floor(1000 * (gpus - backbone_actors * backbone_gpus) / face_actors) / 1000 if face_gpu else 0.0
    )
    plan = StagePlan(
        face_actors=face_actors,
        face_cpus=face_cpus,
        face_threads=max(1, int(face_cpus)),
        face_gpus=face_gpus,
        face_device="cuda" if face_gpu else "cpu",
        backbone_actors=backbone_actors,
        backbone_cpus=backbone_cpus,
        backbone_gpus=backbone_gpus if gpu else 0.0,
        backbone_threads=threads,
        write_cpus=cfg.write_cpus,
        device="cuda" if gpu else "cpu",
        # a GPU backbone worker keeps its CPU for feeding the GPU, the writer must be one worker, and many
        # face workers may need the writer's own core
        write_joined=not gpu and backbone_actors == 1 and cpus < JOIN_WRITE_BELOW_CPUS,
    )
    if plan.reserved_cpus > cpus:
        raise RuntimeError(
            f"stage pools reserve {plan.reserved_cpus:g} CPUs but the cluster has {cpus:g}: {plan.describe()}"
        )
    if plan.reserved_gpus > gpus or (face_gpu and face_gpus <= 0):
        raise RuntimeError(
            f"stage pools reserve {plan.reserved_gpus:g} GPUs but the cluster has {gpus:g}: {plan.describe()}"
        )
    return plan
