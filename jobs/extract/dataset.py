"""The extraction's Ray Data stage list: work items -> face -> backbone (or crops) -> write.

`build_dataset` wires the stages (`jobs.extract.stages`, handed over by name) into one streaming dataset:
one video per face task, pools sized by `jobs.extract.plan.plan_stages`, Ray Data blocks bounded in
bytes so that a video streams chunk by chunk, and a bounded number of retries for work whose worker died
(`RuntimeConfig.task_retries`; Ray Data's default retries for ever). A task that still fails loses its
video or batch, not the run (`max_errored_blocks`): the driver reports its subjects as failures. Where the
plan joins the writer to the one backbone (or crop) worker (`StagePlan.write_joined`), those two stages are
one pool of one worker.
"""

from __future__ import annotations

import warnings
from typing import Any

from jobs.extract.config import ExtractConfig
from jobs.extract.plan import StagePlan
from jobs.extract.spec import spec_with
from jobs.extract.stages.deferred import (
    BackboneWorker,
    BackboneWriteWorker,
    CropWorker,
    CropWriteWorker,
    FaceWorker,
    WriteWorker,
)
from jobs.extract.stages.write import pause_from_env
from pipeline.cache.write import CacheWriter


def build_dataset(cfg: ExtractConfig, plan: StagePlan, items: list[dict], writer: CacheWriter) -> Any:
    """The Ray Data dataset of `items` (one per video) through the stages, sized by `plan`, writing into
    `writer`'s cache: it yields the write stage's summary rows (`jobs.extract.rows`)."""
    # Ray 2.60 takes a stage's `max_task_retries` only among `map_batches`' extra keyword arguments (as
    # its own default is set), which it marks deprecated: that one warning is expected here
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`ray_remote_args` is deprecated", category=DeprecationWarning
        )
        return _stages(cfg, plan, items, writer)


def _stages(cfg: ExtractConfig, plan: StagePlan, items: list[dict], writer: CacheWriter) -> Any:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.max_errored_blocks = len(items)  # a crashed worker loses its video, not the run
    ctx.target_max_block_size = cfg.runtime.block_bytes  # stream chunk by chunk within a video
    retries = cfg.runtime.task_retries  # then the work fails (its subjects: "no result") and the run goes on
    ds: Any = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(
        FaceWorker,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(
            size=plan.face_actors, max_tasks_in_flight_per_actor=1
        ),  # a video each
        num_cpus=plan.face_cpus,
        num_gpus=plan.face_gpus or None,
        max_task_retries=retries,
        fn_constructor_kwargs={
            "settings": cfg.faces,
            "device": plan.face_device,
            "threads": plan.face_threads,
        },
    )
    crops = cfg.kind == "crops"  # crops are encoded, not run through the backbone
    make = {"codec": cfg.crops} if crops else _backbone_kwargs(cfg, plan, writer.spec)
    write = {
        "opener": writer.opener(),
        "pause_s": pause_from_env(),
        "describe": spec_with(cfg) if writer.spec is None else None,  # the backbone workers describe it
    }
    if plan.write_joined:  # one worker makes the maps and writes them
        return ds.map_batches(
            CropWriteWorker if crops else BackboneWriteWorker,
            batch_size=cfg.runtime.backbone_batch,
            compute=ray.data.ActorPoolStrategy(size=1),  # one writer: it holds each subject's open shard
            num_cpus=plan.backbone_cpus + plan.write_cpus,
            max_task_retries=retries,
            fn_constructor_kwargs={"make": make, "write": write},
        )
    ds = ds.map_batches(
        CropWorker if crops else BackboneWorker,
        batch_size=cfg.runtime.backbone_batch,
        compute=ray.data.ActorPoolStrategy(size=plan.backbone_actors),
        num_cpus=plan.backbone_cpus,
        num_gpus=None if crops else plan.backbone_gpus or None,
        max_task_retries=retries,
        fn_constructor_kwargs=make,
    )
    return ds.map_batches(
        WriteWorker,
        batch_size=cfg.runtime.write_batch,
        compute=ray.data.ActorPoolStrategy(size=1),  # one writer: it holds each subject's open shard
        num_cpus=plan.write_cpus,
        max_task_retries=retries,
        fn_constructor_kwargs=write,
    )


def _backbone_kwargs(cfg: ExtractConfig, plan: StagePlan, spec: dict | None) -> dict[str, Any]:
    """The backbone stage's constructor arguments."""
    return {
        "backbone": cfg.backbone,
        "cfg": cfg.features,
        "device": plan.device,
        "threads": plan.backbone_threads,
        # each worker checks that the backbone it built is the one the spec describes; without one, the
        # workers describe it (`jobs.extract.spec`)
        "expect": spec,
    }
