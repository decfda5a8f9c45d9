"""`BackboneConfig`: which backbone, which weights, where it is cut. Imports no torch, so that whoever only
describes a run (the extraction's driver, which reads the backbone's spec from `pipeline.cache.backbone_spec`)
loads neither torch nor timm. The backbone itself is `model.backbone`.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.split import DEFAULT_TRAINABLE_BLOCKS


@dataclass(frozen=True)
class BackboneConfig:
    """Which backbone, which weights, and where it is cut."""

    name: str = "mobilenetv4_conv_small"  # timm model name, optionally with a weights tag (`name.tag`)
    pretrained: bool = False  # load timm's hub weights for the name (needs the Hugging Face hub)
    weights: str | None = None  # local weights file (.pth, .pth.tar, .safetensors); wins over `pretrained`
    input_size: int = 224  # side of the square RGB face crop (112 or 224 from the command line)
    channels_last: bool = True  # run the convolutions in channels-last memory format (faster on CPU)
    # the last N blocks train with the temporal model, the stem and the blocks before them are frozen
    # (0 .. number of blocks, 5 for mobilenetv4_conv_small; 2: blocks 3 and 4, the paper's "final layers")
    trainable_blocks: int = DEFAULT_TRAINABLE_BLOCKS
