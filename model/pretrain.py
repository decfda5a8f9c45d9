"""The network `lwaffect pretrain` fine-tunes: a MobileNetV4 features model with AffectNet heads.

AffectNet (Mollahosseini et al. 2017; its label codes and folder layouts are kept here for the reader and
the synthetic set) labels faces with 8 expressions (`AFFECTNET_NAMES[:8]`; 8..10 are
None, Uncertain and No-Face, left out of the expression loss) and a valence and arousal in [-1, 1] (`VA_NONE`
where there is none). `PretrainNet` pools the body's last map (the stride-32 map of `model.backbone`) and
puts two linear heads on it: expression logits (8) and valence / arousal (2, tanh in the loss). Only the
body is kept afterwards: its state dict is what `model.backbone.build_backbone` loads from a weights file.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

AFFECTNET_NAMES: tuple[str, ...] = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger",
                                    "Contempt", "None", "Uncertain", "No-Face")  # fmt: skip
AFFECTNET_CLASSES = 8  # expression classes a model learns (0..7)
VA_NONE = -2.0  # valence / arousal of an image without one (Uncertain, No-Face)
# the AffectNet folder layouts (pipeline.datasets.affectnet reads them, pipeline.synth.affectnet writes them)
CSV_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
               "expression", "valence", "arousal")  # fmt: skip
IMAGES_DIR, LISTS_DIR = "Manually_Annotated_Images", "Manually_Annotated_file_lists"  # original layout
LIST_FILES = {"train": "training.csv", "validation": "validation.csv"}  # original layout, per part
CROPPED_DIRS = {"train": "train_set", "validation": "val_set"}  # cropped layout, per part


class PretrainNet(nn.Module):
    """Body (timm features_only MobileNetV4) -> pooled last map -> expression logits and VA outputs."""

    def __init__(self, body: Any, dropout: float = 0.2):
        super().__init__()
        self.body = body
        channels = int(body.feature_info.channels()[-1])  # 960 for mobilenetv4_conv_small
        self.dropout = nn.Dropout(dropout)
        self.expression = nn.Linear(channels, AFFECTNET_CLASSES)
        self.va = nn.Linear(channels, 2)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        last = self.body(images)[-1]  # (B, 3, S, S) -> (B, 960, S / 32, S / 32)
        pooled = self.dropout(last.mean(dim=(2, 3)))  # -> (B, 960)
        return self.expression(pooled), self.va(pooled)  # (B, 8) logits, (B, 2) raw valence / arousal
