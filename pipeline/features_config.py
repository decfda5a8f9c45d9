"""`FeatureConfig`: how the frozen backbone is run and what its maps are stored as (`pipeline.features` runs
it). Imports no torch, so that the extraction's driver, which only describes the run, loads none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Autocast = Literal["auto", "bf16", "off"]


@dataclass(frozen=True)
class FeatureConfig:
    """How the frozen backbone is run and what dtype its maps are stored in."""

    dtype: str = "float16"  # stored dtype of the maps (the cache's `dtype`)
    batch_size: int = 32  # crops per backbone call
    channels_last: bool = True  # feed channels-last tensors (about 2x faster convolutions on CPU)
    # calls are padded with blank crops to a multiple of this many rows: the CPU convolutions keep
    # kernels and buffers per batch shape, and a worker fed batches of varying size grew by 300 MB over
    # 60 calls, where whole batches held steady (measured)
    pad_to: int = 8
    autocast: Autocast = (
        "auto"  # bf16 autocast: "auto" = where the device has native bf16 (CPU AVX512-BF16/AMX, CUDA)
    )
