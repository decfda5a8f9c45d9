"""Per-channel statistics of the cached maps over the face frames of training subjects.

`map_statistics` gives, for each cached map, the (C,) mean and standard deviation over the face frames and
positions of up to `max_subjects` training subjects (evenly spread over the list), accumulated in float64.
The model standardises the maps it reads with them (`model.affect.MapStandardiser`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

STD_FLOOR = 1e-3  # smallest standard deviation used: a channel that never changes is left near its scale


def map_statistics(
    cache: Any, subjects: Sequence[str], max_subjects: int = 32
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(mean (C,), std (C,))] per cached map over the face frames of (a spread of) `subjects`."""
    chosen = [subjects[i] for i in np.unique(np.linspace(0, len(subjects) - 1, max_subjects).astype(int))]
    sums: list[np.ndarray] = []
    squares: list[np.ndarray] = []
    count = 0
    for subject in chosen:
        shard = cache.read(subject)
        face = np.asarray(shard.face, bool)
        if not face.any():
            continue
        for k, maps in enumerate(shard.maps):
            m = np.asarray(maps[face], np.float64)  # (N, C, H, W)
            s, q = m.sum(axis=(0, 2, 3)), np.square(m).sum(axis=(0, 2, 3))  # (C,) each
            if len(sums) <= k:
                sums.append(s)
                squares.append(q)
            else:
                sums[k] += s
                squares[k] += q
        count += int(face.sum())
    if count == 0:
        raise ValueError("no face frame in the training subjects' cache shards")
    stats = []
    for k, (s, q) in enumerate(zip(sums, squares, strict=True)):
        cells = count * int(np.prod(shard.maps[k].shape[2:]))  # frames x H x W
        mean = s / cells
        std = np.sqrt(np.maximum(q / cells - mean**2, 0.0))
        stats.append((torch.tensor(mean, dtype=torch.float32), torch.tensor(np.maximum(std, STD_FLOOR),
                                                                            dtype=torch.float32)))  # fmt: skip
    return stats
