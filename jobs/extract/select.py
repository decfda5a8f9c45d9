"""Which subjects an extraction covers (`select_subjects`), and whether any of them still lacks a shard
(`work_left`), without torch: the extract command asks before its heavy imports whether to start Ray at once
(`jobs.extract.runtime.RayStart`), so that a rerun with nothing left to do starts no Ray.

May import: model.tasks, pipeline.datasets, pipeline.cache.layout.
"""

from __future__ import annotations

from pathlib import Path

from model.tasks import SPLITS
from pipeline.cache.layout import list_shards, resolve_location
from pipeline.datasets import Catalogue, Subject, load_catalogue


def select_subjects(catalogue: Catalogue, split: str, names: tuple[str, ...] | None) -> list[Subject]:
    """Subjects of `split` in any task (all subjects for "all"), optionally only `names`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    if split == "all":
        chosen = list(catalogue.subjects.values())
    else:
        picked = {s.name: s for task in catalogue.tasks() for s in catalogue.subjects_in(task, split)}
        chosen = [catalogue.subjects[n] for n in catalogue.subjects if n in picked]
    if names is not None:
        missing = sorted(set(names) - set(catalogue.subjects))
        if missing:
            raise ValueError(f"subjects not in {catalogue.root}: {', '.join(missing)}")
        chosen = [s for s in chosen if s.name in set(names)]
    return chosen


def work_left(
    input: Path, cache: str, split: str = "all", names: tuple[str, ...] | None = None, rebuild: bool = False
) -> bool:
    """Whether an extraction of these subjects into `cache` has work left: a rebuild, or a subject without a
    shard file under its final name. Shards are not opened (whether they match the settings needs the
    backbone). Where the input or the cache cannot be read, False: the extraction itself then says why,
    and starts Ray where it needs one after all."""
    if rebuild:
        return True
    try:
        subjects = select_subjects(load_catalogue(input, strict=False), split, names)
        have = list_shards(*resolve_location(cache))
    except Exception:  # any problem is the extraction's to report
        return False
    return any(s.name not in have for s in subjects)
